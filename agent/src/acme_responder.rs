//! HTTP-01 responder for a shared webroot.

use crate::cli::ServeChallengesArgs;

pub async fn standalone(_args: ServeChallengesArgs) -> u8 {
    eprintln!("serve-challenges: not implemented yet");
    1
}
