//! `ve.conf`: a VE's configuration, which operators edit by hand while the
//! VE is stopped and `kennel start` then applies.

use std::path::Path;

use kennel_ve::config::VeConfig;
use kennel_ve::units::parse_cpus;
use kennel_ve::VeId;

/// The id the corpus's files are written for (`id = "101"`).
const ID: &str = "101";

/// The input is the whole file.
pub fn run(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(id) = VeId::parse(ID) else {
        unreachable!("{ID} is a valid id")
    };
    let origin = Path::new("ve.conf");
    let Ok(cfg) = VeConfig::parse(text, &id, origin) else {
        return;
    };
    // What `kennel start` takes from a file, `kennel create` and `set`
    // would have taken on the command line: the file is no way around
    // their checks.
    if let Err(e) = cfg.network.validate() {
        panic!("accepted a [network] that create/set refuse: {e}\n{text}");
    }
    if let Some(c) = cfg.resources.cpus {
        assert!(
            parse_cpus(&c.to_string()).is_ok(),
            "accepted cpus = {c}, which --cpus refuses"
        );
    }
    // What `kennel set` writes back is read as the same configuration.
    let written = match cfg.to_toml() {
        Ok(t) => t,
        Err(e) => panic!("an accepted configuration cannot be written: {e}\n{cfg:?}"),
    };
    match VeConfig::parse(&written, &id, origin) {
        Ok(back) => assert_eq!(back, cfg, "written as:\n{written}"),
        Err(e) => panic!("written as\n{written}\nit is refused: {e}"),
    }
}
