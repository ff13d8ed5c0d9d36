//! Sizes (`--memory 512M`, `import_max_size`) and CPU counts (`--cpus`).

use kennel_ve::units::{parse_cpus, Size, MAX_CPUS};

/// The largest size the parser takes (`kennel_ve::units`' 8 EiB).
const MAX_SIZE: u128 = 1 << 63;

/// The input is one value, given to both parsers.
pub fn run(data: &[u8]) {
    let Some(s) = crate::text(data) else { return };
    size(s);
    cpus(s);
}

fn size(s: &str) {
    let parsed = Size::parse(s);
    if let Some(exact) = exact_integer(s) {
        match (&parsed, exact) {
            (Ok(v), Some(n)) => {
                assert_eq!(u128::from(v.bytes()), n, "{s:?} is {n} bytes exactly")
            }
            (Err(e), Some(n)) => panic!("{s:?} ({n} bytes) refused: {e}"),
            (Ok(v), None) => panic!("{s:?} is past 2^63 bytes, yet taken as {v:?}"),
            (Err(_), None) => {}
        }
    }
    let Ok(v) = parsed else { return };
    assert!(u128::from(v.bytes()) <= MAX_SIZE, "{s:?} -> {v:?}");
    let printed = v.to_string();
    match Size::parse(&printed) {
        Ok(back) => assert_eq!(back, v, "{s:?} -> {printed:?} -> {back:?}"),
        Err(e) => panic!("{s:?} -> {v:?} prints as {printed:?}, which is refused: {e}"),
    }
}

/// What a size written as a whole number with an optional unit means, in
/// exact arithmetic: `Some(Some(bytes))` within range, `Some(None)` past
/// it; `None` when `s` is not of that form (a fraction, say).
fn exact_integer(s: &str) -> Option<Option<u128>> {
    let t = s.trim();
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(end);
    if digits.is_empty() {
        return None;
    }
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let mult: u128 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    // Leading zeros do not change the value; more than 39 digits left is
    // past any u128, and so past the range.
    let digits = digits.trim_start_matches('0');
    let n = if digits.is_empty() {
        Some(0)
    } else if digits.len() > 38 {
        None
    } else {
        digits.parse::<u128>().ok()
    };
    Some(
        n.and_then(|n| n.checked_mul(mult))
            .filter(|&b| b <= MAX_SIZE),
    )
}

fn cpus(s: &str) {
    let Ok(c) = parse_cpus(s) else { return };
    assert!(c.is_finite() && c > 0.0 && c <= MAX_CPUS, "{s:?} -> {c}");
    // As ve.conf stores it: a TOML float, read back the same.
    let printed = c.to_string();
    assert_eq!(parse_cpus(&printed).ok(), Some(c), "{s:?} -> {printed:?}");
}
