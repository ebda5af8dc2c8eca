//! The small typed values several commands share, built from the lexer's
//! tokens: flags (APPEND, STORE), sequence sets (FETCH, STORE, COPY, MOVE,
//! UID EXPUNGE, SEARCH), dates (SEARCH) and date-times (APPEND).
//!
//! ```text
//! flag          = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" /
//!                 "\Draft" / flag-keyword / flag-extension
//! flag-list     = "(" [flag *(SP flag)] ")"
//! sequence-set  = (seq-number / seq-range) ["," sequence-set] / "$"
//! date          = date-text / DQUOTE date-text DQUOTE
//! date-time     = DQUOTE date-day-fixed "-" date-month "-" date-year
//!                 SP time SP zone DQUOTE
//! ```

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};

use super::{Fail, P, R, bad};
use crate::flags::Flag;
use crate::proto::chars::is_atom_char;
use crate::proto::command::{SeqNum, SequenceSet};

impl P<'_> {
    /// `flag` (RFC 9051 §9): a system flag, `\Extension` or a keyword.
    pub(super) fn flag(&mut self) -> R<Flag> {
        if self.eat(b'\\') {
            let a = self.take_while(is_atom_char);
            if a.is_empty() {
                return bad("Invalid flag");
            }
            let name = String::from_utf8_lossy(a).into_owned();
            return Ok(match name.to_ascii_uppercase().as_str() {
                "SEEN" => Flag::Seen,
                "ANSWERED" => Flag::Answered,
                "FLAGGED" => Flag::Flagged,
                "DELETED" => Flag::Deleted,
                "DRAFT" => Flag::Draft,
                _ => Flag::Extension(name),
            });
        }
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err(self.missing_or("Invalid flag"));
        }
        Ok(Flag::Keyword(String::from_utf8_lossy(a).into_owned()))
    }

    /// `flag-list = "(" [flag *(SP flag)] ")"`.
    pub(super) fn flag_list(&mut self) -> R<Vec<Flag>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    /// `sequence-set` or `$` (RFC 5182).
    pub(super) fn seq_set(&mut self) -> R<SequenceSet> {
        if self.eat(b'$') {
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let a = self.seq_number()?;
            let b = if self.eat(b':') {
                self.seq_number()?
            } else {
                a
            };
            ranges.push((a, b));
            if !self.eat(b',') {
                return Ok(SequenceSet::Ranges(ranges));
            }
        }
    }

    pub(super) fn seq_number(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            return Ok(SeqNum::Asterisk);
        }
        match self.peek() {
            Some(b'1'..=b'9') => {}
            _ => return Err(self.missing_or("Invalid sequence set")),
        }
        self.number()
            .map(SeqNum::Value)
            .map_err(|_| Fail::Bad("Invalid sequence set".into()))
    }

    /// `date = date-text / DQUOTE date-text DQUOTE`,
    /// `date-text = date-day "-" date-month "-" date-year`.
    pub(super) fn date(&mut self) -> R<NaiveDate> {
        let q = self.eat(b'"');
        let day = self
            .number()
            .map_err(|_| Fail::Bad("Invalid date".into()))?;
        let d = self.date_rest(day)?;
        if q {
            self.expect(b'"')?;
        }
        Ok(d)
    }

    /// `"-" date-month "-" date-year` after the day.
    pub(super) fn date_rest(&mut self, day: u32) -> R<NaiveDate> {
        let invalid = || Fail::Bad("Invalid date".into());
        if !self.eat(b'-') {
            return Err(invalid());
        }
        let m = self.take_while(|b| b.is_ascii_alphabetic());
        let month = MONTHS
            .iter()
            .position(|x| x.as_bytes().eq_ignore_ascii_case(m))
            .ok_or_else(invalid)?;
        if !self.eat(b'-') {
            return Err(invalid());
        }
        let y = self.digits().map_err(|_| invalid())?;
        if y.len() != 4 {
            return Err(invalid());
        }
        let year = y.iter().fold(0i32, |a, &c| a * 10 + i32::from(c - b'0'));
        NaiveDate::from_ymd_opt(year, month as u32 + 1, day).ok_or_else(invalid)
    }

    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP
    /// time SP zone DQUOTE` (RFC 9051 §9).
    pub(super) fn date_time(&mut self) -> R<DateTime<FixedOffset>> {
        let invalid = || Fail::Bad("Invalid date-time".into());
        self.expect(b'"')?;
        // date-day-fixed = (SP DIGIT) / 2DIGIT
        self.eat(b' ');
        let day = self.number().map_err(|_| invalid())?;
        let date = self.date_rest(day).map_err(|_| invalid())?;
        if !self.eat(b' ') {
            return Err(invalid());
        }
        let h = self.two_digits()?;
        let colon1 = self.eat(b':');
        let mi = self.two_digits()?;
        let colon2 = self.eat(b':');
        let s = self.two_digits()?;
        if !(colon1 && colon2 && self.eat(b' ')) {
            return Err(invalid());
        }
        let sign = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(invalid()),
        };
        self.i += 1;
        let z = self.take_while(|b| b.is_ascii_digit());
        if z.len() != 4 {
            return Err(invalid());
        }
        let zh = i32::from(z[0] - b'0') * 10 + i32::from(z[1] - b'0');
        let zm = i32::from(z[2] - b'0') * 10 + i32::from(z[3] - b'0');
        if zm > 59 {
            return Err(invalid());
        }
        self.expect(b'"')?;
        let tz = FixedOffset::east_opt(sign * (zh * 3600 + zm * 60)).ok_or_else(invalid)?;
        let time = NaiveTime::from_hms_opt(h, mi, s).ok_or_else(invalid)?;
        tz.from_local_datetime(&date.and_time(time))
            .single()
            .ok_or_else(invalid)
    }

    /// Exactly two digits (time fields of `date-time`).
    pub(super) fn two_digits(&mut self) -> R<u32> {
        match self.take_while(|b| b.is_ascii_digit()) {
            [a, b] => Ok(u32::from(a - b'0') * 10 + u32::from(b - b'0')),
            _ => bad("Invalid date-time"),
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn bad_sequence_sets() {
        bad(&[
            (b"a FETCH 0 UID\r\n", Some("a"), "Invalid sequence set"),
            (b"a FETCH x UID\r\n", Some("a"), "Invalid sequence set"),
            (
                b"a FETCH 1:99999999999 UID\r\n",
                Some("a"),
                "Invalid sequence set",
            ),
        ]);
    }
}
