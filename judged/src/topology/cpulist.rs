//! CPU lists in the kernel's syntax (`0-3,8,10-11`), as sysfs shows them and as
//! `cpuset.cpus` takes them.
//!
//! runguard has its own parser (`runner::runguard::cpuset`) that must keep DOMjudge's error
//! wording and refuses an empty list; here an empty list is valid (the `cpulist` of a node
//! with memory but no CPUs) and an error names the item at fault.

use std::collections::BTreeSet;

/// A set of CPU numbers, ascending.
pub type Cpus = BTreeSet<u32>;

/// Parse a list like `0-3,8,10-11` (ranges inclusive and ascending; whitespace around the
/// whole list, such as a sysfs file's newline, is ignored; an empty list is no CPU). The error
/// says which item is wrong and why, without the file: the reader adds that.
pub fn parse_cpu_list(text: &str) -> Result<Cpus, String> {
    let text = text.trim();
    let mut cpus = Cpus::new();
    if text.is_empty() {
        return Ok(cpus);
    }
    for item in text.split(',') {
        match item.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(item, first)?, number(item, last)?);
                if first > last {
                    return Err(format!("`{item}' is a descending range"));
                }
                cpus.extend(first..=last);
            }
            None => {
                cpus.insert(number(item, item)?);
            }
        }
    }
    Ok(cpus)
}

/// One CPU number of `item`; decimal digits only (`u32::from_str` would take a `+`).
fn number(item: &str, digits: &str) -> Result<u32, String> {
    if item.is_empty() {
        return Err("an empty item (two commas, or one at an end)".to_owned());
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{item}' is not a CPU number or a range like 2-5"));
    }
    digits
        .parse()
        .map_err(|_| format!("`{digits}' is too large for a CPU number"))
}

/// The kernel's compact form of a set: `0-3,8,10-11`; the empty set is the empty string.
pub fn format_cpu_list(cpus: &Cpus) -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &cpu in cpus {
        match ranges.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(cpu) => *last = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    ranges
        .iter()
        .map(|&(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_that_parse() {
        let cases: &[(&str, &[u32], &str)] = &[
            // (text, CPUs, compact form)
            ("0", &[0], "0"),
            ("0-3", &[0, 1, 2, 3], "0-3"),
            ("0-3,8,10-11\n", &[0, 1, 2, 3, 8, 10, 11], "0-3,8,10-11"),
            ("0,1,2", &[0, 1, 2], "0-2"),
            ("5-5", &[5], "5"),
            ("0-19,40-59", &[], "0-19,40-59"),
            ("3,1", &[1, 3], "1,3"),
            ("0-2,1-3", &[0, 1, 2, 3], "0-3"),
            ("", &[], ""),
            ("\n", &[], ""),
            (" 7 ", &[7], "7"),
            ("4294967295", &[u32::MAX], "4294967295"),
        ];
        for (text, expected, compact) in cases {
            let cpus = parse_cpu_list(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            if !expected.is_empty() {
                assert_eq!(cpus, expected.iter().copied().collect(), "{text:?}");
            }
            assert_eq!(format_cpu_list(&cpus), *compact, "{text:?}");
            assert_eq!(
                parse_cpu_list(compact).unwrap(),
                cpus,
                "{compact:?} round trip"
            );
        }
    }

    #[test]
    fn lists_that_do_not_parse_name_the_bad_item() {
        let cases: &[(&str, &str)] = &[
            // (text, the error says)
            ("3-1", "`3-1' is a descending range"),
            ("0,,2", "an empty item"),
            ("0,", "an empty item"),
            (",0", "an empty item"),
            ("a", "`a' is not a CPU number"),
            ("0-", "`0-' is not a CPU number"),
            ("-3", "`-3' is not a CPU number"),
            ("1-2-3", "`1-2-3' is not a CPU number"),
            ("+1", "`+1' is not a CPU number"),
            ("0 1", "`0 1' is not a CPU number"),
            ("0-63:2/4", "`0-63:2/4' is not a CPU number"),
            ("4294967296", "`4294967296' is too large"),
        ];
        for (text, says) in cases {
            let error = parse_cpu_list(text).expect_err(text);
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
