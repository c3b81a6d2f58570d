use anyhow::{bail, Result};

use crate::cli::{Events, Global};

pub fn run(g: &Global, a: Events) -> Result<i32> {
    let interval = parse_interval(&a.interval)?;
    let mut c = super::load(&g.root, &a.id)?;
    c.refresh_status()?;
    c.events(interval, a.stats)?;
    Ok(0)
}

/// runc takes a Go duration ("5s", "500ms"); libcontainer polls in whole seconds.
fn parse_interval(s: &str) -> Result<u32> {
    let (num, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = match num.parse() {
        Ok(n) => n,
        Err(_) => bail!("invalid --interval {s:?}: use e.g. 5s, 1m or 500ms"),
    };
    let secs = match unit {
        "" | "s" => n,
        "ms" => n.div_ceil(1000),
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("invalid --interval {s:?}: use e.g. 5s, 1m or 500ms"),
    };
    Ok(secs.clamp(1, u32::MAX as u64) as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn intervals() {
        assert_eq!(super::parse_interval("5s").unwrap(), 5);
        assert_eq!(super::parse_interval("7").unwrap(), 7);
        assert_eq!(super::parse_interval("500ms").unwrap(), 1);
        assert_eq!(super::parse_interval("2m").unwrap(), 120);
        assert!(super::parse_interval("abc").is_err());
    }
}
