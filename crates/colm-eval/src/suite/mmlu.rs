//! MMLU (Hendrycks et al. 2021): 43 subjects of four-option questions, 0-shot or 5-shot.
//!
//! Files: `test/<subject>_test.csv` (items) and `dev/<subject>_dev.csv` (5 examples per
//! subject), header `question,choice0,choice1,choice2,choice3,answer`, `answer` 0–3. Prompt:
//! "The following is a multiple choice question about <subject>." then, for 5-shot, the five
//! dev examples each closed by `Answer: X`, then the question as in [`super::choice::prompt`].
//! Extraction as [`super::choice::extract_choice`]. Ids `mmlu:<subject>:<row>` (row from 1);
//! subjects in alphabetical order.

use std::path::Path;

use super::choice;
use super::{Item, LoadError, Reference, SuiteOptions};

const LABELS: [&str; 4] = ["A", "B", "C", "D"];

struct Row {
    question: String,
    options: Vec<String>,
    answer: usize,
}

fn read_rows(path: &Path) -> Result<Vec<Row>, LoadError> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| LoadError::format(path, "file", e.to_string()))?;
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let at = format!("row {}", i + 1);
        let rec = rec.map_err(|e| LoadError::format(path, at.clone(), e.to_string()))?;
        if rec.len() != 6 {
            return Err(LoadError::format(
                path,
                at,
                format!("{} fields where 6 were expected", rec.len()),
            ));
        }
        let answer: usize = rec[5]
            .trim()
            .parse()
            .ok()
            .filter(|a| *a < 4)
            .ok_or_else(|| {
                LoadError::format(path, at.clone(), format!("answer {:?} is not 0–3", &rec[5]))
            })?;
        rows.push(Row {
            question: rec[0].to_owned(),
            options: (1..5).map(|j| rec[j].to_owned()).collect(),
            answer,
        });
    }
    Ok(rows)
}

fn labels() -> Vec<String> {
    LABELS.iter().map(|s| s.to_string()).collect()
}

/// Loads MMLU from its folder (`dev/`, `test/`), 0-shot or 5-shot, optionally some subjects.
///
/// # Errors
/// [`LoadError`] for unreadable files, malformed rows, or a subject asked for that is not there.
pub fn load(dir: &Path, opts: &SuiteOptions) -> Result<Vec<Item>, LoadError> {
    let test_dir = dir.join("test");
    let mut subjects: Vec<String> = std::fs::read_dir(&test_dir)
        .map_err(|e| LoadError::io(&test_dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix("_test.csv"))
                .map(str::to_owned)
        })
        .collect();
    subjects.sort();
    for s in &opts.subjects {
        if !subjects.contains(s) {
            return Err(LoadError::format(
                dir,
                "subjects",
                format!("no subject {s:?} (have {})", subjects.join(", ")),
            ));
        }
    }
    let labels = labels();
    let mut items = Vec::new();
    for subject in subjects
        .iter()
        .filter(|s| opts.subjects.is_empty() || opts.subjects.contains(s))
    {
        let pretty = subject.replace('_', " ");
        let mut header = format!("The following is a multiple choice question about {pretty}.\n\n");
        if opts.five_shot {
            for ex in read_rows(&dir.join("dev").join(format!("{subject}_dev.csv")))? {
                header.push_str(ex.question.trim());
                header.push('\n');
                for (l, o) in labels.iter().zip(&ex.options) {
                    header.push_str(&format!("{l}. {}\n", o.trim()));
                }
                header.push_str(&format!("Answer: {}\n\n", LABELS[ex.answer]));
            }
        }
        for (i, row) in read_rows(&test_dir.join(format!("{subject}_test.csv")))?
            .into_iter()
            .enumerate()
        {
            items.push(Item {
                id: format!("mmlu:{subject}:{}", i + 1),
                turns: vec![format!(
                    "{header}{}",
                    choice::prompt(&row.question, &labels, &row.options)
                )],
                category: Some(subject.clone()),
                reference: Reference::Choice {
                    label: LABELS[row.answer].to_owned(),
                    labels: labels.clone(),
                    options: row.options,
                },
            });
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_subjects_zero_and_five_shot() {
        let dir = crate::suite::test_data("mmlu");
        let all = load(&dir, &SuiteOptions::default()).unwrap();
        assert!(all.len() > 1000);
        assert_eq!(all[0].id, "mmlu:abstract_algebra:1");
        let opts = SuiteOptions {
            five_shot: true,
            subjects: vec!["anatomy".into()],
        };
        let five = load(&dir, &opts).unwrap();
        assert!(five
            .iter()
            .all(|i| i.category.as_deref() == Some("anatomy")));
        assert_eq!(five[0].turns[0].matches("\nAnswer: ").count(), 5);
        let bad = SuiteOptions {
            five_shot: false,
            subjects: vec!["astrology".into()],
        };
        assert!(load(&dir, &bad)
            .unwrap_err()
            .to_string()
            .contains("astrology"));
    }
}
