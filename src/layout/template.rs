//! Folder templates (`--folder-structure`): how an asset's date, album and library become the
//! directory it lands in.
//!
//! Accepted spellings:
//! * `none` (any case): flat, every file in the top directory.
//! * Python format, as icloudpd: `{:%Y/%m/%d}` (the default). Text outside braces is literal;
//!   `{{` and `}}` are literal braces.
//! * Plain strftime, as kei: `%Y/%m/%d`. Used when the template has no `{:...}` field; then
//!   `%` directives anywhere in the text are expanded (`%%` is a literal `%`).
//! * Tokens, in either spelling: `{album}` (the album's folder path, `Folder/Sub/Album`, when
//!   the files are laid out for an album; nothing otherwise) and `{library}` (the library's
//!   zone name, e.g. `PrimarySync`, `SharedSync-<UUID>`).
//!
//! `/` separates folders; empty and `.` components are dropped. A template that is absolute
//! or has a `..` component is refused when parsed, and every rendered component is made safe
//! again, so no template, album name or date can leave the target directory.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset};

use super::sanitize;

/// The default folder structure, as icloudpd spells it.
pub const DEFAULT_FOLDER_STRUCTURE: &str = "{:%Y/%m/%d}";

/// Why a folder template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The empty string (`none` is the spelling for a flat layout).
    #[error("the template is empty; use `none` for a flat layout")]
    Empty,
    /// A `{name}` that is not a known token.
    #[error("unknown token `{{{0}}}`: expected {{:<strftime>}}, {{album}} or {{library}}")]
    UnknownToken(String),
    /// `{` without its `}`.
    #[error("`{{` at byte {0} is never closed (write `{{{{` for a literal brace)")]
    Unclosed(usize),
    /// `}` without its `{`.
    #[error("`}}` at byte {0} has no opening brace (write `}}}}` for a literal brace)")]
    Unopened(usize),
    /// `{:}`: a date field without a format.
    #[error("`{{:}}` has no date format, e.g. {{:%Y/%m/%d}}")]
    EmptyDateFormat,
    /// A strftime format chrono cannot print.
    #[error("invalid date format `{0}`")]
    BadDateFormat(String),
    /// The template starts with `/`.
    #[error("the template is an absolute path; folders are relative to the download directory")]
    Absolute,
    /// A `..` component.
    #[error("the template has a `..` component, which would leave the download directory")]
    ParentComponent,
}

/// One piece of a parsed template.
#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Date(Vec<Item<'static>>),
    Album,
    Library,
}

/// A parsed `--folder-structure`.
#[derive(Debug, Clone)]
pub struct FolderTemplate {
    /// As the user wrote it (printed back in messages; equality is on this).
    source: String,
    /// Empty for `none`.
    pieces: Vec<Piece>,
}

/// What a template is rendered with, besides the date.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateValues<'a> {
    /// Safe components of the album path (folders, then the album), if laid out for an album.
    pub album: Option<&'a [String]>,
    /// Safe library folder name.
    pub library: &'a str,
}

impl FolderTemplate {
    /// Parse a template (see the module documentation for the spellings).
    pub fn parse(source: &str) -> Result<FolderTemplate, TemplateError> {
        if source.eq_ignore_ascii_case("none") {
            return Ok(FolderTemplate {
                source: source.to_string(),
                pieces: Vec::new(),
            });
        }
        if source.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut pieces = lex(source)?;
        let python_style = pieces.iter().any(|p| matches!(p, Piece::Date(_)));
        if !python_style {
            for piece in &mut pieces {
                if let Piece::Literal(text) = piece {
                    *piece = Piece::Date(parse_strftime(text)?);
                }
            }
        }
        let template = FolderTemplate {
            source: source.to_string(),
            pieces,
        };
        template.check_shape()?;
        Ok(template)
    }

    /// `none`: every file goes to the top directory.
    pub fn is_flat(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The template uses `{album}`.
    pub fn uses_album(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Album))
    }

    /// The template uses `{library}`.
    pub fn uses_library(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Library))
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The folder components for one asset: each non-empty, never `.` or `..`, no `/`.
    pub fn render(&self, date: &DateTime<FixedOffset>, values: TemplateValues<'_>) -> Vec<String> {
        let mut text = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(literal) => text.push_str(literal),
                Piece::Date(items) => {
                    let plain = plain_years(items, date);
                    let items = plain.as_deref().unwrap_or(items);
                    // Checked at parse time; a failure here would be a chrono surprise.
                    if write!(text, "{}", date.format_with_items(items.iter())).is_err() {
                        text.push(sanitize::REPLACEMENT);
                    }
                }
                Piece::Album => {
                    if let Some(album) = values.album {
                        text.push_str(&album.join("/"));
                    }
                }
                Piece::Library => text.push_str(values.library),
            }
        }
        text.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(sanitize::component)
            .collect()
    }

    /// Refuse absolute templates and `..` components, judged on a skeleton where every
    /// variable part renders as `x` (variable parts are made safe when rendered).
    fn check_shape(&self) -> Result<(), TemplateError> {
        let mut skeleton = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => skeleton.push_str(text),
                Piece::Date(items) => {
                    for item in items {
                        match item {
                            Item::Literal(t) | Item::Space(t) => skeleton.push_str(t),
                            Item::OwnedLiteral(t) | Item::OwnedSpace(t) => skeleton.push_str(t),
                            _ => skeleton.push('x'),
                        }
                    }
                }
                Piece::Album | Piece::Library => skeleton.push('x'),
            }
        }
        if skeleton.starts_with('/') {
            return Err(TemplateError::Absolute);
        }
        if skeleton.split('/').any(|c| c == "..") {
            return Err(TemplateError::ParentComponent);
        }
        Ok(())
    }
}

/// The items of a date field with the year fields of a date past 9999 as plain digits, or
/// `None` when chrono prints them as they should be (years 0 to 9999, the usual case).
///
/// chrono prints a year outside 0-9999 with a sign (`%Y` of 10000 is `+10000`, as ISO 8601
/// wants), and its `%C` takes the century as two digits (the 100th century comes out as
/// `:0`). A folder gets `10000` and `100`. Negative years keep chrono's `%Y` (`-0001`); their
/// century (`%C`) becomes the signed number (`-1`) too.
fn plain_years(
    items: &[Item<'static>],
    date: &DateTime<FixedOffset>,
) -> Option<Vec<Item<'static>>> {
    use chrono::Datelike;
    use chrono::format::Numeric;
    let year = date.year();
    let iso_year = date.iso_week().year();
    let usual = |y: i32| (0..10_000).contains(&y);
    if usual(year) && usual(iso_year) {
        return None;
    }
    let literal = |v: i32| Item::OwnedLiteral(v.to_string().into_boxed_str());
    let plain = items
        .iter()
        .map(|item| match item {
            Item::Numeric(Numeric::Year, _) if year >= 10_000 => literal(year),
            Item::Numeric(Numeric::IsoYear, _) if iso_year >= 10_000 => literal(iso_year),
            Item::Numeric(Numeric::YearDiv100, _) if !usual(year) => literal(year.div_euclid(100)),
            Item::Numeric(Numeric::IsoYearDiv100, _) if !usual(iso_year) => {
                literal(iso_year.div_euclid(100))
            }
            other => other.clone(),
        })
        .collect();
    Some(plain)
}

/// Split a template into literals and `{...}` fields.
fn lex(source: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = source.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                chars.next();
                literal.push('}');
            }
            '}' => return Err(TemplateError::Unopened(at)),
            '{' => {
                let rest = &source[at + 1..];
                let end = rest.find('}').ok_or(TemplateError::Unclosed(at))?;
                let field = &rest[..end];
                // Skip the field's characters and its closing brace.
                for _ in 0..field.chars().count() + 1 {
                    chars.next();
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(parse_field(field)?);
            }
            _ => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// The inside of one `{...}` field.
fn parse_field(field: &str) -> Result<Piece, TemplateError> {
    if let Some(format) = field.strip_prefix(':') {
        if format.is_empty() {
            return Err(TemplateError::EmptyDateFormat);
        }
        return parse_strftime(format).map(Piece::Date);
    }
    match field {
        "album" => Ok(Piece::Album),
        "library" => Ok(Piece::Library),
        other => Err(TemplateError::UnknownToken(other.to_string())),
    }
}

/// A strftime format chrono can print for any date.
fn parse_strftime(format: &str) -> Result<Vec<Item<'static>>, TemplateError> {
    let bad = || TemplateError::BadDateFormat(format.to_string());
    let items = StrftimeItems::new(format)
        .parse_to_owned()
        .map_err(|_| bad())?;
    let probe = DateTime::from_timestamp(0, 0)
        .ok_or_else(bad)?
        .fixed_offset();
    let mut out = String::new();
    write!(out, "{}", probe.format_with_items(items.iter())).map_err(|_| bad())?;
    Ok(items)
}

impl Default for FolderTemplate {
    /// `{:%Y/%m/%d}`.
    fn default() -> Self {
        FolderTemplate::parse(DEFAULT_FOLDER_STRUCTURE).expect("the default template is valid")
    }
}

impl FromStr for FolderTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, TemplateError> {
        FolderTemplate::parse(s)
    }
}

impl PartialEq for FolderTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for FolderTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn date() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2024, 3, 7, 9, 5, 0)
            .unwrap()
    }

    fn render(template: &str, album: Option<&[String]>) -> Vec<String> {
        let values = TemplateValues {
            album,
            library: "PrimarySync",
        };
        FolderTemplate::parse(template)
            .unwrap()
            .render(&date(), values)
    }

    #[test]
    fn python_and_strftime_spellings_agree() {
        assert_eq!(render("{:%Y/%m/%d}", None), ["2024", "03", "07"]);
        assert_eq!(render("%Y/%m/%d", None), ["2024", "03", "07"]);
        assert_eq!(render("{:%Y}/{:%m}", None), ["2024", "03"]);
        assert_eq!(render("Photos/{:%Y-%m}", None), ["Photos", "2024-03"]);
        // Python style keeps text outside braces literal, `%` included.
        assert_eq!(render("100%/{:%Y}", None), ["100%", "2024"]);
        assert_eq!(render("%Y/100%%", None), ["2024", "100%"]);
        assert_eq!(render("{{x}}/{:%Y}", None), ["{x}", "2024"]);
    }

    #[test]
    fn none_is_flat() {
        for t in ["none", "None", "NONE"] {
            let template = FolderTemplate::parse(t).unwrap();
            assert!(template.is_flat());
            assert!(
                template
                    .render(&date(), TemplateValues::default())
                    .is_empty()
            );
        }
    }

    #[test]
    fn tokens_render_album_path_and_library() {
        let album = vec!["Trips".to_string(), "Rome".to_string()];
        assert_eq!(
            render("{album}/{:%Y}", Some(&album)),
            ["Trips", "Rome", "2024"]
        );
        assert_eq!(render("{album}/{:%Y}", None), ["2024"]);
        assert_eq!(render("{library}/%Y", None), ["PrimarySync", "2024"]);
        let t = FolderTemplate::parse("{library}/{album}").unwrap();
        assert!(t.uses_album() && t.uses_library());
        assert!(!FolderTemplate::default().uses_album());
    }

    #[test]
    fn dot_and_empty_components_are_dropped() {
        assert_eq!(render("./{:%Y}//{:%m}/", None), ["2024", "03"]);
    }

    #[test]
    fn malformed_templates_are_refused_with_a_reason() {
        use TemplateError::*;
        let cases: &[(&str, TemplateError)] = &[
            ("", Empty),
            ("{foo}", UnknownToken("foo".into())),
            ("{}", UnknownToken(String::new())),
            ("{:%Y", Unclosed(0)),
            ("%Y}", Unopened(2)),
            ("{:}", EmptyDateFormat),
            ("{:%Q}", BadDateFormat("%Q".into())),
            ("/photos/{:%Y}", Absolute),
            ("{:/%Y}", Absolute),
            ("../{:%Y}", ParentComponent),
            ("{:%Y/../%m}", ParentComponent),
            ("a/..", ParentComponent),
        ];
        for (template, expected) in cases {
            assert_eq!(
                FolderTemplate::parse(template).as_ref().err(),
                Some(expected),
                "{template}"
            );
        }
        // The message names the problem.
        let msg = FolderTemplate::parse("{foo}").unwrap_err().to_string();
        assert!(msg.contains("{foo}"), "{msg}");
    }

    #[test]
    fn years_past_9999_render_as_plain_digits() {
        let at = |y: i32| {
            FixedOffset::east_opt(0)
                .unwrap()
                .with_ymd_and_hms(y, 6, 15, 12, 0, 0)
                .unwrap()
        };
        let render_at = |template: &str, y: i32| {
            FolderTemplate::parse(template)
                .unwrap()
                .render(&at(y), TemplateValues::default())
        };
        let all = "%Y/%-Y/%_Y/%C/%G/%g/%y/%F";
        assert_eq!(
            render_at(all, 10_000),
            [
                "10000",
                "10000",
                "10000",
                "100",
                "10000",
                "00",
                "00",
                "10000-06-15"
            ]
        );
        assert_eq!(render_at("{:%Y}/{:%C}", 123_456), ["123456", "1234"]);
        // 0 to 9999 as chrono prints them.
        assert_eq!(
            render_at(all, 9999),
            [
                "9999",
                "9999",
                "9999",
                "99",
                "9999",
                "99",
                "99",
                "9999-06-15"
            ]
        );
        assert_eq!(render_at("%Y/%C/%G", 1), ["0001", "00", "0001"]);
        assert_eq!(render_at("%Y/%C", 0), ["0000", "00"]);
        // Before year 0: chrono's signed year, and a signed century.
        assert_eq!(render_at("%Y/%C", -1), ["-0001", "-1"]);
    }

    #[test]
    fn rendered_components_are_safe() {
        let hostile = vec!["..".to_string(), "a\0b".to_string()];
        for c in render("{album}/x..y/%Y", Some(&hostile)) {
            assert!(!c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\0']));
        }
    }
}
