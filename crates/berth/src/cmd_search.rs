//! `search`: Docker Hub's search API (and any registry's that offers it),
//! with the docker CLI's columns, filters and `--format`.

use anyhow::{anyhow, Result};
use berth_registry::search::{self, SearchResult};
use serde_json::json;

use crate::cli::SearchArgs;
use crate::format::human::ellipsis;
use crate::format::template::Format;
use crate::usage::CliError;

const HEADERS: &[(&str, &str)] = &[
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
];

/// The description column's width, as the docker CLI cuts it.
const DESCRIPTION_WIDTH: usize = 45;

/// What `--filter` keeps.
#[derive(Default)]
struct Filter {
    stars: u64,
    official: Option<bool>,
    automated: Option<bool>,
}

fn daemon_error(message: String) -> anyhow::Error {
    anyhow!(CliError::Bare {
        message: format!("Error: {message}"),
        code: 1,
    })
}

fn parse_filters(list: &[String]) -> Result<Filter> {
    let mut f = Filter::default();
    for kv in list {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        let bool_of = |v: &str| -> Result<bool> {
            match v {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
                "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
                _ => Err(daemon_error(format!(
                    "Invalid filter '{k}={v}': strconv.ParseBool: parsing \"{v}\": invalid syntax"
                ))),
            }
        };
        match k {
            "stars" => {
                f.stars = v.parse().map_err(|_| {
                    daemon_error(format!(
                        "Invalid filter 'stars={v}': strconv.Atoi: parsing \"{v}\": invalid syntax"
                    ))
                })?
            }
            "is-official" => f.official = Some(bool_of(v)?),
            "is-automated" => {
                errln!("WARNING: the \"is-automated\" filter is deprecated, and searching for \"is-automated=true\" will not yield any results in future.");
                f.automated = Some(bool_of(v)?);
            }
            _ => return Err(daemon_error(format!("Invalid filter '{k}'"))),
        }
    }
    Ok(f)
}

pub fn search(a: &SearchArgs) -> Result<i32> {
    let filter = parse_filters(&a.filter)?;
    let limit = if a.limit == 0 { 25 } else { a.limit };
    let format_src = a.format.clone().unwrap_or_default();
    let fmt = Format::parse(&format_src)
        .and_then(|f| {
            f.with_default("table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}")
        })
        .map_err(|e| anyhow!("{e}"))?;
    let (host, term) = search::split_term(&a.term);
    let agent = berth_registry::auth::default_agent();
    let results =
        search::search(&agent, &host, &term, limit).map_err(|e| daemon_error(e.to_string()))?;
    let json_rows = fmt.is_json() || format_src.trim() == "{{json .}}";
    let keep = |r: &SearchResult| {
        r.star_count >= filter.stars
            && filter.official.is_none_or(|o| o == r.is_official)
            && filter.automated.is_none_or(|o| o == r.is_automated)
    };
    let rows: Vec<serde_json::Value> = results
        .iter()
        .filter(|r| keep(r))
        .map(|r| {
            let description = if a.no_trunc {
                r.description.clone()
            } else {
                ellipsis(&r.description, DESCRIPTION_WIDTH)
            };
            let official = if json_rows {
                r.is_official.to_string()
            } else if r.is_official {
                "[OK]".to_string()
            } else {
                String::new()
            };
            json!({
                "Description": description,
                "IsOfficial": official,
                "Name": r.name,
                "StarCount": r.star_count.to_string(),
            })
        })
        .collect();
    let text = fmt
        .render_table(&rows, HEADERS)
        .map_err(|e| anyhow!("{e}"))?;
    out!("{text}")?;
    Ok(0)
}
