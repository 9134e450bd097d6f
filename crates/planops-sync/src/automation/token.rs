//! Where the callback tokens live: the only credential in the URL Odoo calls
//! (Odoo's webhook action cannot sign or send headers) is kept in a Secret its
//! rule or policy owns. The operator reads and creates those Secrets
//! (`src/controllers/hook_token.rs`); the names are here because the gateway and
//! the automation sync must agree on them.

use sha2::{Digest, Sha256};

/// Key of the token in the Secret.
pub const TOKEN_KEY: &str = "token";
const PREFIX: &str = "planops-hook-";
/// Longest Secret name Kubernetes accepts (a DNS subdomain).
const MAX_NAME: usize = 253;

/// `planops-hook-<rule>`; a name that would exceed 253 characters is cut and
/// given a hash of the full rule name, so it stays unique.
pub fn hook_secret_name(rule: &str) -> String {
    bounded_name(PREFIX, rule)
}

/// `planops-approval-hook-<policy>`: an ApprovalPolicy's callback token, apart
/// from the rules' so that a rule and a policy of the same name never share one.
pub fn approval_hook_secret_name(policy: &str) -> String {
    bounded_name(APPROVAL_PREFIX, policy)
}

const APPROVAL_PREFIX: &str = "planops-approval-hook-";

fn bounded_name(prefix: &str, owner: &str) -> String {
    let name = format!("{prefix}{owner}");
    if name.len() <= MAX_NAME {
        return name;
    }
    let hash = hex::encode(&Sha256::digest(owner.as_bytes())[..4]);
    let keep = MAX_NAME - prefix.len() - hash.len() - 1;
    // Resource names are DNS subdomains (ASCII), so any byte index is a
    // boundary; a cut must not leave a trailing '.' or '-'.
    let cut = owner[..keep].trim_end_matches(['.', '-']);
    format!("{prefix}{cut}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_stay_valid_and_unique() {
        assert_eq!(hook_secret_name("late-po"), "planops-hook-late-po");
        let long = "a".repeat(253);
        let name = hook_secret_name(&long);
        assert!(name.len() <= MAX_NAME, "{}", name.len());
        assert_ne!(name, hook_secret_name(&"a".repeat(252)));
        let dotted = format!("{}.{}", "a".repeat(235), "b".repeat(17));
        assert!(!hook_secret_name(&dotted).contains(".-"));
    }
}
