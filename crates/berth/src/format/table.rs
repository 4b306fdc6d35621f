//! Column alignment exactly like Go's `text/tabwriter` as the docker CLI
//! configures it: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
//!
//! Cells are terminated by `\t`; the text after a line's last tab is not part
//! of any column and is never padded. A column's width is
//! `max(min_width, widest cell + padding)`, computed over each run of
//! consecutive lines that have that column (Go's "column blocks"), so
//! `CONTAINER ID` (12 chars) gets 15 columns and `IMAGE` gets the minimum 10:
//! `CONTAINER ID   IMAGE     COMMAND   ...`. Widths count characters, as Go
//! counts runes, not display columns.

/// Go `tabwriter` settings (flags 0: left-aligned, nothing discarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TabWriter {
    /// Minimal cell width, padding included.
    pub min_width: usize,
    /// Added to the widest cell of a column.
    pub padding: usize,
    /// Character used for padding.
    pub pad_char: char,
}

impl TabWriter {
    /// The docker CLI's table writer: min width 10, padding 3, spaces.
    pub const DOCKER: TabWriter = TabWriter {
        min_width: 10,
        padding: 3,
        pad_char: ' ',
    };

    /// `docker top`'s writer: min width 20, padding 3, spaces.
    pub const DOCKER_TOP: TabWriter = TabWriter {
        min_width: 20,
        padding: 3,
        pad_char: ' ',
    };

    /// Align tab-separated `text` (lines separated by `\n`) as Go's tabwriter
    /// would after writing `text` and flushing.
    pub fn format(&self, text: &str) -> String {
        let lines: Vec<Vec<Cell<'_>>> = text
            .split('\n')
            .map(|line| {
                line.split('\t')
                    .map(|text| Cell {
                        text,
                        width: text.chars().count(),
                    })
                    .collect()
            })
            .collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.format_block(&mut out, &mut widths, &lines, 0, lines.len());
        out
    }

    /// Go's `Writer.format`: find each block of lines that has a cell in
    /// column `widths.len()`, size that column, and recurse to the right.
    fn format_block(
        &self,
        out: &mut String,
        widths: &mut Vec<usize>,
        lines: &[Vec<Cell<'_>>],
        line0: usize,
        line1: usize,
    ) {
        let column = widths.len();
        let has_column = |line: &Vec<Cell<'_>>| column + 1 < line.len();
        let mut line0 = line0;
        let mut this = line0;
        while this < line1 {
            if !lines.get(this).is_some_and(has_column) {
                this += 1;
                continue;
            }
            self.write_lines(out, widths, lines, line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 {
                let Some(line) = lines.get(this).filter(|l| has_column(l)) else {
                    break;
                };
                if let Some(cell) = line.get(column) {
                    width = width.max(cell.width + self.padding);
                }
                this += 1;
            }
            widths.push(width);
            self.format_block(out, widths, lines, line0, this);
            widths.pop();
            line0 = this;
        }
        self.write_lines(out, widths, lines, line0, line1);
    }

    fn write_lines(
        &self,
        out: &mut String,
        widths: &[usize],
        lines: &[Vec<Cell<'_>>],
        line0: usize,
        line1: usize,
    ) {
        for i in line0..line1 {
            let Some(line) = lines.get(i) else { break };
            for (j, cell) in line.iter().enumerate() {
                out.push_str(cell.text);
                if let Some(&w) = widths.get(j) {
                    out.extend(std::iter::repeat_n(
                        self.pad_char,
                        w.saturating_sub(cell.width),
                    ));
                }
            }
            // The last line is the unterminated remainder: no newline.
            if i + 1 < lines.len() {
                out.push('\n');
            }
        }
    }
}

#[derive(Debug)]
struct Cell<'a> {
    text: &'a str,
    width: usize,
}

/// Align `text` with the docker CLI's settings ([`TabWriter::DOCKER`]).
pub fn tabwrite(text: &str) -> String {
    TabWriter::DOCKER.format(text)
}

/// A header line and rows, printed like the docker CLI's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Column headers; no header line is printed when empty.
    pub headers: Vec<String>,
    /// One `Vec` of cells per row.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers and no rows.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The aligned table, each line ending in `\n`.
    pub fn render(&self) -> String {
        let headers: Vec<&str> = self.headers.iter().map(String::as_str).collect();
        render(&headers, &self.rows)
    }
}

/// Render a table: header line (unless `headers` is empty) and rows, cells
/// joined by tabs and aligned by [`tabwrite`]. Every line ends in `\n`; an
/// empty table is just the header line. Cells must not contain tabs or
/// newlines (they would start new cells or lines, as in docker).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut text = String::new();
    if !headers.is_empty() {
        text.push_str(&headers.join("\t"));
        text.push('\n');
    }
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    tabwrite(&text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PS: [&str; 7] = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];

    #[test]
    fn empty_docker_ps() {
        assert_eq!(
            render(&PS, &[]),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn docker_ps_with_rows() {
        let row = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let rows = vec![
            row(&[
                "3f2a9c1b7d4e",
                "busybox",
                "\"sh -c 'echo hello w…\"",
                "5 seconds ago",
                "Up 4 seconds",
                "",
                "boring_turing",
            ]),
            row(&[
                "a1b2c3d4e5f6",
                "nginx:latest",
                "\"nginx\"",
                "2 hours ago",
                "Exited (0) 1 hour ago",
                "80/tcp",
                "web",
            ]),
        ];
        // Widths: 12+3, 12+3, 22+3 (the quoted command), 13+3, 21+3, min 10.
        let want = "\
CONTAINER ID   IMAGE          COMMAND                  CREATED         STATUS                  PORTS     NAMES
3f2a9c1b7d4e   busybox        \"sh -c 'echo hello w…\"   5 seconds ago   Up 4 seconds                      boring_turing
a1b2c3d4e5f6   nginx:latest   \"nginx\"                  2 hours ago     Exited (0) 1 hour ago   80/tcp    web
";
        assert_eq!(render(&PS, &rows), want);
        let mut t = Table::new(&PS);
        for r in rows {
            t.push(r);
        }
        assert_eq!(t.render(), want);
    }

    #[test]
    fn last_column_is_not_padded_and_short_columns_use_min_width() {
        assert_eq!(
            render(&["A", "B"], &[vec!["x".into(), "y".into()]]),
            "A         B\nx         y\n"
        );
    }

    #[test]
    fn column_blocks_are_per_run_of_lines() {
        // A line without tabs ends the block: the lines after it are sized
        // on their own, as Go does.
        let text = "a\tb\nlongername\tc\nplain line\nd\te\n";
        // First block: "longername" (10) + 3 = 13; last block: min width 10.
        let want = "a            b\nlongername   c\nplain line\nd         e\n";
        assert_eq!(tabwrite(text), want);
    }

    #[test]
    fn ragged_rows_and_unterminated_last_line() {
        assert_eq!(
            tabwrite("a\tb\tc\nd\te"),
            "a         b         c\nd         e"
        );
        assert_eq!(tabwrite(""), "");
        assert_eq!(tabwrite("\n"), "\n");
        assert_eq!(tabwrite("x\t\ty\n"), "x                   y\n");
    }

    #[test]
    fn widths_count_characters() {
        assert_eq!(tabwrite("héllo…wörld\tx\n"), "héllo…wörld   x\n");
    }

    #[test]
    fn custom_settings() {
        let tw = TabWriter {
            min_width: 0,
            padding: 1,
            pad_char: '.',
        };
        assert_eq!(tw.format("a\tbb\tc\naaa\tb\tc\n"), "a...bb.c\naaa.b..c\n");
    }
}
