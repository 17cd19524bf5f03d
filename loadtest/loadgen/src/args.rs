//! Command-line options: `--name value` pairs after a scenario name, each
//! with a default. Small on purpose: the scenarios have a dozen flat options.

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args {
    values: HashMap<String, String>,
    used: std::cell::RefCell<Vec<String>>,
}

impl Args {
    pub fn parse(raw: &[String]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut it = raw.iter();
        while let Some(key) = it.next() {
            let name = key
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --option, got {key:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            values.insert(name.to_string(), value.clone());
        }
        Ok(Args {
            values,
            used: Default::default(),
        })
    }

    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        self.used.borrow_mut().push(name.to_string());
        match self.values.get(name) {
            None => default,
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                eprintln!("loadgen: bad value for --{name}: {raw:?}");
                std::process::exit(2)
            }),
        }
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name, default.to_string())
    }

    /// A comma-separated list (empty when absent).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.string(name, "")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Fail on options no scenario asked for (typos).
    pub fn reject_unknown(&self) {
        let used = self.used.borrow();
        for key in self.values.keys() {
            if !used.contains(key) {
                eprintln!("loadgen: unknown option --{key}");
                std::process::exit(2);
            }
        }
    }

    /// The options as given, to pass on to worker processes.
    pub fn to_vec(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.values {
            out.push(format!("--{k}"));
            out.push(v.clone());
        }
        out
    }
}
