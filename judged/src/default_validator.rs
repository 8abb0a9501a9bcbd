//! The problem format's default output validator: compares the team's output with the judge's
//! answer token by token.
//!
//! Semantics follow the format's reference implementation: tokens are separated by whitespace;
//! comparison is case-insensitive unless `case_sensitive`; whitespace is ignored unless
//! `space_change_sensitive`, which requires it to match byte for byte. With a float tolerance,
//! a judge token that is a finite float accepts a team token that is a finite float within the
//! absolute *or* the relative tolerance (`float_tolerance e` sets both).

/// The validator's flags, parsed from `validator_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Flags {
    pub case_sensitive: bool,
    pub space_change_sensitive: bool,
    pub float_absolute_tolerance: Option<f64>,
    pub float_relative_tolerance: Option<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlagError {
    #[error("unknown default validator flag `{0}' (known: case_sensitive, space_change_sensitive, float_tolerance, float_absolute_tolerance, float_relative_tolerance)")]
    Unknown(String),
    #[error("validator flag `{0}' needs a non-negative number after it")]
    MissingNumber(String),
}

impl Flags {
    pub fn parse(flags: &[String]) -> Result<Flags, FlagError> {
        let mut parsed = Flags::default();
        let mut flags = flags.iter();
        while let Some(flag) = flags.next() {
            let mut number = || {
                flags
                    .next()
                    .and_then(|value| parse_float(value))
                    .filter(|value| *value >= 0.0)
                    .ok_or_else(|| FlagError::MissingNumber(flag.clone()))
            };
            match flag.as_str() {
                "case_sensitive" => parsed.case_sensitive = true,
                "space_change_sensitive" => parsed.space_change_sensitive = true,
                "float_absolute_tolerance" => parsed.float_absolute_tolerance = Some(number()?),
                "float_relative_tolerance" => parsed.float_relative_tolerance = Some(number()?),
                "float_tolerance" => {
                    let tolerance = number()?;
                    parsed.float_absolute_tolerance = Some(tolerance);
                    parsed.float_relative_tolerance = Some(tolerance);
                }
                other => return Err(FlagError::Unknown(other.to_owned())),
            }
        }
        Ok(parsed)
    }

    fn uses_floats(&self) -> bool {
        self.float_absolute_tolerance.is_some() || self.float_relative_tolerance.is_some()
    }
}

/// The outcome: correct, or wrong with a message for the jury.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Correct,
    Wrong(String),
}

/// Compare `team` output with the judge's `answer`.
pub fn compare(answer: &[u8], team: &[u8], flags: &Flags) -> Outcome {
    let mut judge = Cursor::new(answer);
    let mut user = Cursor::new(team);
    loop {
        // Whitespace before the next judge token: with space_change_sensitive the team's must
        // be the very same bytes.
        while let Some(expected) = judge.next_if_space() {
            if flags.space_change_sensitive {
                match user.next_byte() {
                    Some(got) if got == expected => {}
                    got => return wrong(&judge, &user, space_error(expected, got)),
                }
            }
        }
        if let Some(got) = user.next_if_space() {
            if flags.space_change_sensitive {
                return wrong(
                    &judge,
                    &user,
                    format!("space change error: judge has no more space, got {got:?}"),
                );
            }
            while user.next_if_space().is_some() {}
        }
        let Some(judge_token) = judge.next_token() else {
            break;
        };
        let Some(team_token) = user.next_token() else {
            let detail = if team.is_empty() {
                "team output was empty"
            } else {
                "team output ended"
            };
            return wrong(
                &judge,
                &user,
                format!(
                    "{detail} while the judge had more (next judge token: {})",
                    String::from_utf8_lossy(judge_token)
                ),
            );
        };
        if let Some(message) = token_mismatch(judge_token, team_token, flags) {
            return wrong(&judge, &user, message);
        }
    }
    user.skip_space();
    match user.next_token() {
        Some(extra) => wrong(
            &judge,
            &user,
            format!("trailing output: {}", String::from_utf8_lossy(extra)),
        ),
        None => Outcome::Correct,
    }
}

fn token_mismatch(judge: &[u8], team: &[u8], flags: &Flags) -> Option<String> {
    let as_text = |token: &[u8]| String::from_utf8_lossy(token).into_owned();
    if flags.uses_floats() {
        if let Some(judge_value) = finite_float(judge) {
            let Some(team_value) = finite_float(team) else {
                return Some(format!("expected a float, got {}", as_text(team)));
            };
            let difference = (judge_value - team_value).abs();
            let within_absolute = flags
                .float_absolute_tolerance
                .is_some_and(|tolerance| difference <= tolerance);
            let within_relative = flags
                .float_relative_tolerance
                .is_some_and(|tolerance| difference <= tolerance * judge_value.abs());
            return (!within_absolute && !within_relative).then(|| {
                format!(
                    "too large a difference: judge {}, team {}, difference {difference:e}",
                    as_text(judge),
                    as_text(team)
                )
            });
        }
    }
    let equal = if flags.case_sensitive {
        judge == team
    } else {
        judge.eq_ignore_ascii_case(team)
    };
    (!equal).then(|| {
        format!(
            "tokens differ: judge {:?}, team {:?}",
            as_text(judge),
            as_text(team)
        )
    })
}

fn parse_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

/// A token that reads entirely as a finite float (`inf` and `nan` do not count, as in the
/// reference validator).
fn finite_float(token: &[u8]) -> Option<f64> {
    std::str::from_utf8(token)
        .ok()
        .and_then(parse_float)
        .filter(|value| value.is_finite())
}

fn space_error(expected: u8, got: Option<u8>) -> String {
    match got {
        Some(got) => format!(
            "space change error: expected {:?}, got {:?}",
            expected as char, got as char
        ),
        None => format!(
            "space change error: expected {:?}, team output ended",
            expected as char
        ),
    }
}

fn wrong(judge: &Cursor, team: &Cursor, message: String) -> Outcome {
    Outcome::Wrong(format!(
        "wrong answer on line {} of the output (line {} of the answer): {message}",
        team.line, judge.line
    ))
}

/// A reading position in one file, counting lines for messages.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor {
            bytes,
            position: 0,
            line: 1,
        }
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.position)?;
        self.position += 1;
        if byte == b'\n' {
            self.line += 1;
        }
        Some(byte)
    }

    fn next_if_space(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.position)?;
        if is_space(byte) {
            self.next_byte()
        } else {
            None
        }
    }

    fn skip_space(&mut self) {
        while self.next_if_space().is_some() {}
    }

    fn next_token(&mut self) -> Option<&'a [u8]> {
        self.skip_space();
        let start = self.position;
        while self.bytes.get(self.position).is_some_and(|b| !is_space(*b)) {
            self.position += 1;
        }
        (self.position > start).then(|| &self.bytes[start..self.position])
    }
}

/// C's `isspace` in the "C" locale.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(text: &str) -> Flags {
        let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        Flags::parse(&words).unwrap()
    }

    fn judged(answer: &str, team: &str, flag_text: &str) -> bool {
        compare(answer.as_bytes(), team.as_bytes(), &flags(flag_text)) == Outcome::Correct
    }

    #[test]
    fn token_comparison_table() {
        // (answer, team, flags, correct?)
        let cases = [
            ("3\n", "3\n", "", true),
            ("3\n", "3", "", true),
            ("3\n", "  3  \n\n", "", true),
            ("1 2\n", "1\n2\n", "", true),
            ("3\n", "4\n", "", false),
            ("3\n", "", "", false),
            ("3\n", "3 4\n", "", false),
            ("", "", "", true),
            ("", "\n", "", true),
            ("", "x", "", false),
            ("Yes\n", "YES\n", "", true),
            ("Yes\n", "YES\n", "case_sensitive", false),
            ("Yes\n", "Yes\n", "case_sensitive", true),
            ("1 2\n", "1 2\n", "space_change_sensitive", true),
            ("1 2\n", "1  2\n", "space_change_sensitive", false),
            ("1 2\n", "1\n2\n", "space_change_sensitive", false),
            ("1 2\n", "1 2", "space_change_sensitive", false),
            ("1 2\n", "1 2\n\n", "space_change_sensitive", false),
            // without a tolerance, floats are plain tokens
            ("0.5\n", "0.50\n", "", false),
            ("0.5\n", "0.50\n", "float_tolerance 1e-6", true),
            (
                "0.333333333333\n",
                "0.3333333\n",
                "float_tolerance 1e-6",
                true,
            ),
            (
                "0.333333333333\n",
                "0.3333\n",
                "float_tolerance 1e-6",
                false,
            ),
            ("0.333333333333\n", "abc\n", "float_tolerance 1e-6", false),
            ("0.333333333333\n", "nan\n", "float_tolerance 1e-6", false),
            (
                "1000000\n",
                "1000000.5\n",
                "float_relative_tolerance 1e-6",
                true,
            ),
            (
                "1000000\n",
                "1000000.5\n",
                "float_absolute_tolerance 1e-6",
                false,
            ),
            (
                "0.000001\n",
                "0.0000015\n",
                "float_relative_tolerance 1e-6",
                false,
            ),
            (
                "0.000001\n",
                "0.0000015\n",
                "float_absolute_tolerance 1e-6",
                true,
            ),
            // non-float judge tokens stay string tokens even with a tolerance
            (
                "case 1: 0.5\n",
                "CASE 1: 0.5000001\n",
                "float_tolerance 1e-6",
                true,
            ),
            ("abc\n", "1\n", "float_tolerance 1e-6", false),
            // integers in the answer are floats too
            ("5\n", "5.0000001\n", "float_tolerance 1e-6", true),
        ];
        for (answer, team, flag_text, correct) in cases {
            assert_eq!(
                judged(answer, team, flag_text),
                correct,
                "answer {answer:?} team {team:?} flags {flag_text:?}"
            );
        }
    }

    #[test]
    fn wrong_answer_message_names_the_line_and_tokens() {
        let Outcome::Wrong(message) = compare(b"1\n2\n", b"1\n3\n", &Flags::default()) else {
            panic!("expected wrong answer");
        };
        assert!(message.contains("line 2"), "{message}");
        assert!(
            message.contains("\"2\"") && message.contains("\"3\""),
            "{message}"
        );
    }

    #[test]
    fn flags_parse_and_reject_unknown_or_incomplete() {
        assert_eq!(
            flags("float_tolerance 1e-4 case_sensitive"),
            Flags {
                case_sensitive: true,
                space_change_sensitive: false,
                float_absolute_tolerance: Some(1e-4),
                float_relative_tolerance: Some(1e-4),
            }
        );
        assert_eq!(
            Flags::parse(&["float_tolerance".into()]),
            Err(FlagError::MissingNumber("float_tolerance".into()))
        );
        assert_eq!(
            Flags::parse(&["ignore_case".into()]),
            Err(FlagError::Unknown("ignore_case".into()))
        );
    }
}
