//! Run the conformance cases against one or more runtimes and print one table.
//!
//! usage: conformance [--runtime NAME=PATH]... [--filter SUBSTR] [--jobs N] [--list]
//!
//! Without --runtime: berth ($RUNTIME or target/release/berth-runtime) and,
//! when installed, runc. Exits 1 if any case fails for the first runtime.

use spec_conformance::{all, default_runtime, find_runc, run_case, Case, Outcome};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

struct Cell {
    text: String,
    failure: Option<String>,
}

fn main() {
    let mut runtimes: Vec<(String, PathBuf)> = vec![];
    let mut filter = String::new();
    let mut jobs = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runtime" => {
                let v = args.next().expect("--runtime NAME=PATH");
                let (n, p) = v.split_once('=').expect("--runtime NAME=PATH");
                runtimes.push((n.to_string(), PathBuf::from(p)));
            }
            "--filter" => filter = args.next().expect("--filter SUBSTR"),
            "--jobs" => jobs = args.next().and_then(|j| j.parse().ok()).expect("--jobs N"),
            "--list" => {
                for c in all() {
                    println!("{}", c.name);
                }
                return;
            }
            _ => {
                eprintln!("usage: conformance [--runtime NAME=PATH]... [--filter SUBSTR] [--jobs N] [--list]");
                std::process::exit(2);
            }
        }
    }
    if runtimes.is_empty() {
        runtimes.push(("berth".into(), default_runtime()));
        if let Some(r) = find_runc() {
            runtimes.push(("runc".into(), r));
        }
    }
    if let Err(e) = spec_conformance::harness::checker_path() {
        eprintln!("conformance: cannot build the checker: {e:#}");
        std::process::exit(2);
    }
    let cases: Vec<&'static Case> = all()
        .into_iter()
        .filter(|c| c.name.contains(&filter))
        .collect();

    // Work items: (case index, runtime index); a few worker threads.
    let work: Vec<(usize, usize)> = (0..cases.len())
        .flat_map(|c| (0..runtimes.len()).map(move |r| (c, r)))
        .collect();
    let work = Arc::new(Mutex::new(work.into_iter()));
    let results: Arc<Mutex<Vec<Vec<Option<Cell>>>>> = Arc::new(Mutex::new(
        (0..cases.len())
            .map(|_| (0..runtimes.len()).map(|_| None).collect())
            .collect(),
    ));
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            let (work, results, cases, runtimes) =
                (work.clone(), results.clone(), &cases, &runtimes);
            s.spawn(move || loop {
                let Some((c, r)) = work.lock().unwrap().next() else {
                    break;
                };
                let cell = match run_case(cases[c], &runtimes[r].1) {
                    Ok(Outcome::Pass) => Cell {
                        text: "pass".into(),
                        failure: None,
                    },
                    Ok(Outcome::Skip(why)) => Cell {
                        text: format!("skip({why})"),
                        failure: None,
                    },
                    Err(e) => Cell {
                        text: "FAIL".into(),
                        failure: Some(format!("{e:#}")),
                    },
                };
                eprintln!("{:<48} {:<8} {}", cases[c].name, runtimes[r].0, cell.text);
                results.lock().unwrap()[c][r] = Some(cell);
            });
        }
    });
    let results = Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap();

    let name_w = cases.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    let col_w: Vec<usize> = (0..runtimes.len())
        .map(|r| {
            results
                .iter()
                .map(|row| row[r].as_ref().map_or(0, |c| c.text.len()))
                .max()
                .unwrap_or(0)
                .max(runtimes[r].0.len())
        })
        .collect();
    let mut header = format!("{:<name_w$}", "test");
    for (r, (n, _)) in runtimes.iter().enumerate() {
        header += &format!(" | {:<w$}", n, w = col_w[r]);
    }
    println!("\n{header}");
    println!("{}", "-".repeat(header.len()));
    for (c, row) in results.iter().enumerate() {
        let mut line = format!("{:<name_w$}", cases[c].name);
        for (r, cell) in row.iter().enumerate() {
            line += &format!(
                " | {:<w$}",
                cell.as_ref().map_or("?", |c| c.text.as_str()),
                w = col_w[r]
            );
        }
        println!("{line}");
    }
    let mut totals = String::new();
    for (r, (n, p)) in runtimes.iter().enumerate() {
        let count = |t: &str| {
            results
                .iter()
                .filter(|row| row[r].as_ref().is_some_and(|c| c.text.starts_with(t)))
                .count()
        };
        totals += &format!(
            "\n{n} ({}): {} pass, {} fail, {} skip",
            p.display(),
            count("pass"),
            count("FAIL"),
            count("skip")
        );
    }
    println!("{totals}");
    for (r, (n, _)) in runtimes.iter().enumerate() {
        for (c, row) in results.iter().enumerate() {
            if let Some(f) = row[r].as_ref().and_then(|c| c.failure.as_ref()) {
                println!(
                    "\n[{n}] {}:\n    {}",
                    cases[c].name,
                    f.replace('\n', "\n    ")
                );
            }
        }
    }
    let first_failed = results
        .iter()
        .any(|row| row[0].as_ref().is_some_and(|c| c.failure.is_some()));
    std::process::exit(if first_failed { 1 } else { 0 });
}
