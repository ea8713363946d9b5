//! Property tests: loading and validating arbitrary input never panics, and every diagnostic's
//! location lies inside its file.

use dk_manifest::{loader::load_str, validate, ValidateOptions};
use proptest::prelude::*;

const SEED: &str = "apiVersion: datakit.infoblox.dev/v1alpha1
kind: Transform
metadata:
  name: daily-revenue
  version: 1.0.0
  labels: {team: a}
spec:
  runtime: sql
  sql: query.sql
  materialized: incremental
  uniqueKey: [id]
  inputs:
    - dataset: orders
    - tags: {tier: gold}
      version: \">=1.0.0\"
  outputs: [{dataset: revenue}]
  trigger:
    policy: composite
    policies: [schedule, on-change]
    schedule: {cron: \"0 */6 * * *\", timezone: Europe/Berlin}
  timeout: 1h30m
  tests:
    - name: t
      given: {orders: [{id: 1}]}
      expect: [{id: 1}]
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: DataSet
metadata: {name: orders}
spec:
  store: wh
  table: main.orders
  schema:
    - {name: id, type: bigint, checks: [not_null, {accepted_values: {values: [1]}}]}
    - {name: x, type: \"decimal(10,2)\", from: revenue.id}
";

fn check(text: &str) {
    let model = load_str("f.yaml", text);
    let diags = validate(&model, ValidateOptions { strict: true });
    for d in diags {
        if let Some(l) = &d.location {
            assert!(l.span.offset + l.span.len <= text.len(), "{d:?}");
            assert!(text.is_char_boundary(l.span.offset), "{d:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
        check(&s);
    }

    #[test]
    fn yaml_like_text_never_panics(s in "([a-z{}\\[\\]:,\\- \"'#&*!|>\\n]|apiVersion: datakit.infoblox.dev/v1alpha1\\n|kind: (Transform|DataSet|Store)\\n){0,60}") {
        check(&s);
    }

    #[test]
    fn mutated_manifests_never_panic(cut in 0usize..SEED.len(), insert in "[ -~\\n]{0,8}", del in 0usize..6) {
        let mut t = String::from(SEED);
        let at = (0..=cut).rev().find(|i| t.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + del).min(t.len());
        let end = (end..=t.len()).find(|i| t.is_char_boundary(*i)).unwrap_or(t.len());
        t.replace_range(at..end, &insert);
        check(&t);
    }
}

#[test]
fn the_seed_itself_is_checked() {
    check(SEED);
}
