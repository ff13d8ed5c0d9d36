//! Sizes in messages: the largest binary unit that keeps a short number.

pub(crate) fn bytes(n: u64) -> String {
    const UNITS: &[(&str, u64)] = &[
        ("T", 1 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if n >= *size {
            let v = n as f64 / *size as f64;
            return if n.is_multiple_of(*size) {
                format!("{}{unit}", n / size)
            } else {
                format!("{v:.1}{unit}")
            };
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_the_options() {
        assert_eq!(super::bytes(20 << 30), "20G");
        assert_eq!(super::bytes(1536 << 20), "1.5G");
        assert_eq!(super::bytes(100), "100B");
    }
}
