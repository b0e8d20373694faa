//! docs/conformance.md stays honest: every row has a known status, every row marked done
//! cites a test, and every cited test (`path::function`) exists in that file.

use std::path::Path;

const STATUSES: [&str; 4] = ["done", "partial", "missing", "refused"];

#[test]
fn every_done_row_cites_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let table = std::fs::read_to_string(root.join("docs/conformance.md")).unwrap();
    let mut rows = 0;
    for line in table.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, item, status, _notes, tests, _] = cells[..] else {
            panic!("a row has four cells: {line}");
        };
        if item == "item" || item.starts_with("---") {
            continue;
        }
        rows += 1;
        assert!(
            STATUSES.contains(&status),
            "unknown status {status:?}: {line}"
        );
        let cited: Vec<&str> = tests
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| t.contains("::"))
            .collect();
        assert!(
            status != "done" || !cited.is_empty(),
            "done without a test: {line}"
        );
        for test in cited {
            let (file, name) = test.rsplit_once("::").unwrap();
            let source = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("{file} in {line}: {e}"));
            assert!(
                source.contains(&format!("fn {name}(")),
                "{test} does not exist: {line}"
            );
        }
    }
    assert!(rows > 100, "the table has its rows: {rows}");
}
