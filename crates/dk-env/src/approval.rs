//! Approvals bound to a plan digest (docs/approvals.md).
//!
//! * keys: Ed25519 (`ed25519-dalek`); a private key file holds the 32-byte seed in base64 under a
//!   header line, the public key is 32 bytes in base64 (what Environments list under
//!   `approval.approvers[].publicKey`);
//! * an [`Approval`] is a signature over [`message`] — project, environment, plan digest and the
//!   comment — so it approves exactly one plan of one environment;
//! * [`requirement`] derives how many approvals a plan needs from the Environment's `approval`
//!   (`required`, `requireFor: [destructive, breaking, pii, always]`, `autoApprove`) and what the
//!   plan does; [`verify`] checks approvals against the approvers and says who is still needed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use dk_manifest::model::Environment;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const KEY_HEADER: &str = "dk ed25519 private key v1";

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("cannot get random bytes for a new key: {0}")]
    Random(String),
    #[error("{path}: not a dk private key ({reason}); make one with `dk keygen --out FILE`")]
    BadKey { path: String, reason: String },
}

/// A new random signing key.
pub fn generate() -> Result<SigningKey, ApprovalError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| ApprovalError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The text of a private key file.
pub fn private_key_text(key: &SigningKey) -> String {
    format!("{KEY_HEADER}\n{}\n", B64.encode(key.to_bytes()))
}

/// Parses a private key file's text (`path` is for messages).
pub fn parse_private_key(text: &str, path: &str) -> Result<SigningKey, ApprovalError> {
    let bad = |reason: &str| ApprovalError::BadKey {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some(KEY_HEADER) {
        return Err(bad(&format!("the first line is not `{KEY_HEADER}`")));
    }
    let body = lines.next().ok_or_else(|| bad("no key line"))?;
    let bytes = B64
        .decode(body)
        .map_err(|e| bad(&format!("not base64: {e}")))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad("the key is not 32 bytes"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The base64 public key of a signing key.
pub fn public_key(key: &SigningKey) -> String {
    B64.encode(key.verifying_key().to_bytes())
}

/// A short, file-name-safe id of a public key (first 16 hex digits of its SHA-256).
pub fn key_id(public_key: &str) -> String {
    hex::encode(Sha256::digest(public_key.trim().as_bytes()))[..16].to_string()
}

/// What an approval signs.
pub fn message(project: &str, environment: &str, digest: &str, comment: Option<&str>) -> Vec<u8> {
    format!(
        "dk-approval/v1\nproject={project}\nenvironment={environment}\ndigest={digest}\ncomment={}",
        comment.unwrap_or("")
    )
    .into_bytes()
}

/// A signed approval of one plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub project: String,
    pub environment: String,
    /// The plan digest approved.
    pub digest: String,
    /// Base64 Ed25519 public key of the signer.
    pub public_key: String,
    /// Base64 Ed25519 signature over [`message`].
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// RFC 3339 time of signing (not signed: informational).
    #[serde(default)]
    pub signed_at: String,
    /// `user@host` that ran `dk approve` (informational).
    #[serde(default)]
    pub signer: String,
}

impl Approval {
    /// Signs plan `digest` of `project`/`environment`.
    pub fn sign(
        key: &SigningKey,
        project: &str,
        environment: &str,
        digest: &str,
        comment: Option<String>,
    ) -> Approval {
        let sig = key.sign(&message(project, environment, digest, comment.as_deref()));
        Approval {
            project: project.to_string(),
            environment: environment.to_string(),
            digest: digest.to_string(),
            public_key: public_key(key),
            signature: B64.encode(sig.to_bytes()),
            comment,
            signed_at: String::new(),
            signer: String::new(),
        }
    }

    pub fn key_id(&self) -> String {
        key_id(&self.public_key)
    }

    /// Whether the signature is a valid signature of this approval's fields by its key.
    pub fn signature_valid(&self) -> bool {
        let Ok(pk) = B64.decode(self.public_key.trim()) else {
            return false;
        };
        let Ok(pk): Result<[u8; 32], _> = pk.try_into() else {
            return false;
        };
        let Ok(vk) = VerifyingKey::from_bytes(&pk) else {
            return false;
        };
        let Ok(sig) = B64.decode(self.signature.trim()) else {
            return false;
        };
        let Ok(sig): Result<[u8; 64], _> = sig.try_into() else {
            return false;
        };
        let msg = message(
            &self.project,
            &self.environment,
            &self.digest,
            self.comment.as_deref(),
        );
        vk.verify(&msg, &Signature::from_bytes(&sig)).is_ok()
    }
}

/// What a plan does that approval rules can require approval for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Triggers {
    pub destructive: bool,
    pub breaking: bool,
    pub pii: bool,
    /// The plan changes anything at all.
    pub changes: bool,
}

/// How many approvals a plan needs in an environment, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// Distinct approvers needed (0: none).
    pub required: u32,
    /// The categories that triggered it (destructive, breaking, pii, always).
    pub reasons: Vec<String>,
    /// The environment approves plans automatically (`approval.autoApprove`).
    pub auto_approved: bool,
    /// Names of the approvers who may approve.
    pub approvers: Vec<String>,
}

/// The approval requirement of a plan that does `t` in `env`.
pub fn requirement(env: &Environment, t: Triggers) -> Requirement {
    let Some(a) = &env.spec.approval else {
        return Requirement::default();
    };
    let approvers = a.approvers.iter().map(|x| x.name.clone()).collect();
    if a.required == 0 || !t.changes {
        return Requirement {
            approvers,
            ..Requirement::default()
        };
    }
    let rules: Vec<&str> = if a.require_for.is_empty() {
        vec!["always"]
    } else {
        a.require_for.iter().map(String::as_str).collect()
    };
    let reasons: Vec<String> = rules
        .into_iter()
        .filter(|r| match *r {
            "always" => true,
            "destructive" => t.destructive,
            "breaking" => t.breaking,
            "pii" => t.pii,
            _ => false,
        })
        .map(str::to_string)
        .collect();
    if reasons.is_empty() {
        return Requirement {
            approvers,
            ..Requirement::default()
        };
    }
    if a.auto_approve {
        return Requirement {
            required: 0,
            reasons,
            auto_approved: true,
            approvers,
        };
    }
    Requirement {
        required: a.required,
        reasons,
        auto_approved: false,
        approvers,
    }
}

/// The outcome of checking approvals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub required: u32,
    /// Approvers whose valid approval counts.
    pub approved_by: Vec<String>,
    /// Approvals that do not count, with why.
    pub refused: Vec<Refused>,
    /// Approvers who have not approved yet.
    pub waiting_for: Vec<String>,
}

/// An approval that does not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The approver's name, or the key id when the key is not listed.
    pub who: String,
    pub reason: String,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.approved_by.len() as u32 >= self.required
    }

    pub fn still_needed(&self) -> u32 {
        self.required.saturating_sub(self.approved_by.len() as u32)
    }

    /// One paragraph for the refusal message.
    pub fn explain(&self, environment: &str) -> String {
        let mut s = format!(
            "environment {environment} needs {} approval(s) of this plan from distinct approvers; {} valid ({})",
            self.required,
            self.approved_by.len(),
            if self.approved_by.is_empty() {
                "none".to_string()
            } else {
                self.approved_by.join(", ")
            }
        );
        if !self.ok() {
            s.push_str(&format!(
                "; still needed: {} more from {}",
                self.still_needed(),
                if self.waiting_for.is_empty() {
                    "(no approver left)".to_string()
                } else {
                    self.waiting_for.join(", ")
                }
            ));
        }
        for r in &self.refused {
            s.push_str(&format!("\n  refused: {}: {}", r.who, r.reason));
        }
        s
    }
}

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

/// Checks `approvals` of plan `digest` of `project`/`environment` against the environment's
/// approvers.
pub fn verify(
    env: &Environment,
    req: &Requirement,
    project: &str,
    digest: &str,
    approvals: &[Approval],
) -> Verdict {
    let environment = env.metadata.name.as_str();
    let approvers = env
        .spec
        .approval
        .as_ref()
        .map(|a| a.approvers.clone())
        .unwrap_or_default();
    let mut v = Verdict {
        required: req.required,
        ..Verdict::default()
    };
    let mut seen: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    for a in approvals {
        // The same approval read from the plan's side file and from the backend counts once.
        if !seen.insert((a.public_key.clone(), a.signature.clone())) {
            continue;
        }
        let who = approvers
            .iter()
            .find(|x| x.public_key.trim() == a.public_key.trim())
            .map(|x| x.name.clone());
        let label = who.clone().unwrap_or_else(|| format!("key {}", a.key_id()));
        let refuse = |v: &mut Verdict, reason: String| {
            v.refused.push(Refused {
                who: label.clone(),
                reason,
            })
        };
        if a.digest != digest {
            refuse(
                &mut v,
                format!(
                    "signed another plan (digest {}, this plan is {})",
                    short(&a.digest),
                    short(digest)
                ),
            );
            continue;
        }
        if a.project != project || a.environment != environment {
            refuse(
                &mut v,
                format!(
                    "signed for {}/{}, not {project}/{environment}",
                    a.project, a.environment
                ),
            );
            continue;
        }
        let Some(name) = who else {
            refuse(
                &mut v,
                format!("the key is not an approver of environment {environment}"),
            );
            continue;
        };
        if !a.signature_valid() {
            refuse(
                &mut v,
                "the signature does not verify (forged or altered)".into(),
            );
            continue;
        }
        if v.approved_by.contains(&name) {
            refuse(
                &mut v,
                "approved this plan more than once; an approver counts once".into(),
            );
            continue;
        }
        v.approved_by.push(name);
    }
    v.waiting_for = approvers
        .iter()
        .map(|a| a.name.clone())
        .filter(|n| !v.approved_by.contains(n))
        .collect();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use dk_manifest::model::{Approval as ApprovalSpec, Approver, EnvironmentSpec, Kind, Resource};

    fn keys(n: usize) -> Vec<SigningKey> {
        (0..n).map(|_| generate().expect("key")).collect()
    }

    fn prod(keys: &[SigningKey], required: u32, require_for: &[&str]) -> Environment {
        let approvers = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Approver {
                name: ["alice", "bob", "carol", "dave"][i].to_string(),
                public_key: public_key(k),
                groups: vec![],
            })
            .collect();
        Resource::new(
            Kind::Environment,
            "prod",
            EnvironmentSpec {
                tier: "prod".into(),
                approval: Some(ApprovalSpec {
                    required,
                    approvers,
                    require_for: require_for.iter().map(|s| s.to_string()).collect(),
                    auto_approve: false,
                }),
                ..EnvironmentSpec::default()
            },
        )
    }

    const ANY: Triggers = Triggers {
        destructive: false,
        breaking: false,
        pii: false,
        changes: true,
    };

    #[test]
    fn key_files_round_trip() {
        let k = generate().expect("key");
        let back = parse_private_key(&private_key_text(&k), "k").expect("parse");
        assert_eq!(public_key(&k), public_key(&back));
        assert!(parse_private_key("nonsense", "k").is_err());
    }

    #[test]
    fn two_of_three() {
        let k = keys(4);
        let env = prod(&k[..3], 2, &[]);
        let req = requirement(&env, ANY);
        assert_eq!(req.required, 2);
        let d = "d1";
        let a = |i: usize| Approval::sign(&k[i], "shop", "prod", d, None);
        // One signature: refused, naming who is still needed.
        let v = verify(&env, &req, "shop", d, &[a(0)]);
        assert!(!v.ok());
        assert!(
            v.explain("prod")
                .contains("still needed: 1 more from bob, carol"),
            "{}",
            v.explain("prod")
        );
        // Two valid: ok.
        assert!(verify(&env, &req, "shop", d, &[a(0), a(2)]).ok());
        // Another plan's signature.
        let other = Approval::sign(&k[1], "shop", "prod", "d2", None);
        let v = verify(&env, &req, "shop", d, &[a(0), other]);
        assert!(
            !v.ok() && v.refused[0].reason.contains("another plan"),
            "{v:?}"
        );
        // An unlisted key.
        let v = verify(&env, &req, "shop", d, &[a(0), a(3)]);
        assert!(
            !v.ok() && v.refused[0].reason.contains("not an approver"),
            "{v:?}"
        );
        // The same approver twice (two distinct signatures, e.g. different comments).
        let again = Approval::sign(&k[0], "shop", "prod", d, Some("again".into()));
        let v = verify(&env, &req, "shop", d, &[a(0), again]);
        assert!(
            !v.ok() && v.refused[0].reason.contains("more than once"),
            "{v:?}"
        );
        // A forged signature: bob's key, alice's signature.
        let mut forged = a(0);
        forged.public_key = public_key(&k[1]);
        let v = verify(&env, &req, "shop", d, &[a(0), forged]);
        assert!(
            !v.ok() && v.refused[0].reason.contains("does not verify"),
            "{v:?}"
        );
        // An altered comment breaks the signature too.
        let mut altered = a(1);
        altered.comment = Some("lgtm".into());
        assert!(!altered.signature_valid());
    }

    #[test]
    fn require_for_and_auto_approve() {
        let k = keys(1);
        let env = prod(&k, 1, &["destructive", "breaking"]);
        assert_eq!(requirement(&env, ANY).required, 0);
        let r = requirement(
            &env,
            Triggers {
                breaking: true,
                ..ANY
            },
        );
        assert_eq!(
            (r.required, r.reasons.clone()),
            (1, vec!["breaking".to_string()])
        );
        assert_eq!(
            requirement(
                &env,
                Triggers {
                    destructive: true,
                    changes: false,
                    ..ANY
                }
            )
            .required,
            0
        );
        let mut dev = env.clone();
        if let Some(a) = dev.spec.approval.as_mut() {
            a.auto_approve = true;
        }
        let r = requirement(
            &dev,
            Triggers {
                destructive: true,
                ..ANY
            },
        );
        assert!(r.auto_approved && r.required == 0);
    }
}
