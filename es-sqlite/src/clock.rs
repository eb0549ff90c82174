//! The database clock: the time SQLite reads in a statement, as whole
//! microseconds since the Unix epoch (UTC), with the millisecond resolution
//! of SQLite's clock.
//!
//! Lease expiry and `updated_at` columns use it, so every process on the
//! file reads the same clock (the machine's), never a caller's idea of
//! the time. SQLite reads it once per statement: every `{now}` in one
//! statement is the same instant.

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

/// The SQL expression for now, in microseconds.
const NOW_MICROS: &str = "CAST(unixepoch('subsec') * 1000000 AS INTEGER)";

/// `template` with every `{now}` replaced by the clock expression.
pub(crate) fn render(template: &str) -> SqlStr {
    // The only text spliced in is the constant above.
    AssertSqlSafe(template.replace("{now}", NOW_MICROS)).into_sql_str()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_placeholder_is_replaced() {
        let sql = super::render("SELECT {now}, {now} + 1");
        assert_eq!(sql.as_str().matches("unixepoch").count(), 2);
        assert!(!sql.as_str().contains('{'));
    }
}
