//! The demo's output: step headings, commands as typed, their output, and verdicts.

use std::io::Write;

pub(crate) struct Report {
    pub(crate) short: String,
    pub(crate) steps: Vec<(String, bool)>,
    pub(crate) ok: bool,
}

impl Report {
    pub(crate) fn heading(&mut self, title: &str) {
        let n = self.steps.len() + 1;
        println!("\n━━━ {n}. {title} ━━━");
        self.steps.push((title.to_string(), true));
        self.ok = true;
    }
    /// Prints a command as run in namespace `role` (`[role]` = `ip netns exec PREFIXrole`).
    pub(crate) fn cmd(&self, role: &str, cmd: &str) {
        println!("  [{role}]$ {}", cmd.replace(&self.short, "$LAB"));
    }
    pub(crate) fn out(&self, text: &str) {
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            println!("      {l}");
        }
    }
    pub(crate) fn info(&self, text: &str) {
        println!("  {text}");
    }
    pub(crate) fn check(&mut self, ok: bool, what: &str) -> bool {
        println!("  {} {what}", if ok { "✔" } else { "✘" });
        if !ok {
            self.ok = false;
            if let Some(s) = self.steps.last_mut() {
                s.1 = false;
            }
        }
        let _ = std::io::stdout().flush();
        ok
    }
    pub(crate) fn end_step(&self) {
        let (t, ok) = self.steps.last().unwrap();
        let n = self.steps.len();
        println!(
            "  ⇒ step {n} {}: {t}",
            if *ok { "✔ passed" } else { "✘ FAILED" }
        );
        let _ = std::io::stdout().flush();
    }
    pub(crate) fn failed(&self) -> bool {
        self.steps.iter().any(|s| !s.1)
    }
}
