//! The command line: `gateway [--config FILE]` serves, `gateway migrate`
//! only runs the migrations, `gateway token --sub ID ...` prints a token
//! signed with the configured secret (for scripts, demos and operators).

use anyhow::{Context, bail};
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: gateway [--config FILE]                 serve
       gateway migrate [--config FILE]         apply the database migrations and exit
       gateway token --sub ID [--username NAME] [--nickname NICK] [--ttl SECS] [--config FILE]
                                               print a token for user ID, signed with
                                               CHAT__AUTH__JWT_SECRET (a user first seen
                                               is created from it: NAME, NICK)
Settings: see README.md (CHAT__SECTION__KEY variables).";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve,
    Migrate,
    Token(TokenRequest),
    Help,
}

/// What `gateway token` mints.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// A local user id, 1 to 2147483647.
    pub sub: i64,
    pub username: Option<String>,
    pub nickname: Option<String>,
    /// Lifetime; `auth.token_ttl_secs` when not given.
    pub ttl_secs: Option<u64>,
}

/// The command and the `--config` file, from the arguments after the
/// program's name.
pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<(Command, Option<PathBuf>)> {
    let mut args = args.into_iter();
    let mut command = Command::Serve;
    let mut file = None;
    let (mut sub, mut username, mut nickname, mut ttl_secs) = (None, None, None, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "migrate" if command == Command::Serve => command = Command::Migrate,
            "token" if command == Command::Serve => {
                command = Command::Token(TokenRequest {
                    sub: 0,
                    username: None,
                    nickname: None,
                    ttl_secs: None,
                })
            }
            "--config" => file = Some(value("--config")?.into()),
            "--sub" => sub = Some(value("--sub")?),
            "--username" => username = Some(value("--username")?),
            "--nickname" => nickname = Some(value("--nickname")?),
            "--ttl" => ttl_secs = Some(value("--ttl")?),
            "-h" | "--help" => return Ok((Command::Help, None)),
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if let Command::Token(request) = &mut command {
        let sub = sub.context("token needs --sub ID")?;
        request.sub = sub
            .parse()
            .ok()
            .filter(|id| (1..=i64::from(i32::MAX)).contains(id))
            .with_context(|| {
                format!("--sub must be a user id from 1 to 2147483647, not {sub:?}")
            })?;
        request.username = username;
        request.nickname = nickname;
        request.ttl_secs = match ttl_secs {
            Some(t) => Some(t.parse().ok().filter(|t| *t > 0).with_context(|| {
                format!("--ttl must be a positive number of seconds, not {t:?}")
            })?),
            None => None,
        };
    } else if sub.is_some() || username.is_some() || nickname.is_some() || ttl_secs.is_some() {
        bail!("--sub, --username, --nickname and --ttl go with `gateway token`");
    }
    Ok((command, file))
}

/// The token `request` asks for, signed as the gateway signs its own
/// (HS256, `iss` = `auth.issuer`, `aud` = `auth.audience` if set).
pub fn mint(request: &TokenRequest, auth: &crate::config::AuthSettings) -> anyhow::Result<String> {
    let secret = auth.jwt_secret.as_ref().context(
        "CHAT__AUTH__JWT_SECRET is not set: the nodes would not know the key of this token",
    )?;
    let mut claims = shared::token::TokenClaims::new(
        request.sub.to_string(),
        request.ttl_secs.unwrap_or(auth.token_ttl_secs),
    );
    claims.iss = Some(auth.issuer.clone());
    claims.aud = auth.audience.clone();
    claims.username = request.username.clone();
    claims.nickname = request.nickname.clone();
    Ok(shared::token::mint(secret.expose().as_bytes(), &claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> anyhow::Result<(Command, Option<PathBuf>)> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn commands_and_their_options() {
        assert_eq!(args("").unwrap(), (Command::Serve, None));
        assert_eq!(
            args("migrate --config c.toml").unwrap(),
            (Command::Migrate, Some("c.toml".into()))
        );
        assert_eq!(
            args("token --sub 7 --username ann --nickname Ann --ttl 60")
                .unwrap()
                .0,
            Command::Token(TokenRequest {
                sub: 7,
                username: Some("ann".into()),
                nickname: Some("Ann".into()),
                ttl_secs: Some(60)
            })
        );
        for (bad, why) in [
            ("token", "needs --sub"),
            ("token --sub 0", "from 1 to"),
            ("token --sub x", "from 1 to"),
            ("token --sub 2147483648", "from 1 to"),
            ("token --sub 1 --ttl 0", "positive"),
            ("token --sub", "needs a value"),
            ("--sub 1", "go with `gateway token`"),
            ("--nickname x", "go with `gateway token`"),
            ("serve", "unknown argument"),
            ("migrate token", "unknown argument"),
        ] {
            let err = args(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    /// The gateway accepts what `gateway token` prints, as that user.
    #[test]
    fn a_minted_token_verifies_as_the_local_user() {
        let mut auth = crate::config::Settings::default().auth;
        let request = TokenRequest {
            sub: 42,
            username: Some("ann".into()),
            nickname: Some("Ann".into()),
            ttl_secs: Some(60),
        };
        let no_secret = mint(&request, &auth).unwrap_err().to_string();
        assert!(no_secret.contains("CHAT__AUTH__JWT_SECRET"), "{no_secret}");
        auth.jwt_secret = Some(crate::config::Secret::new(
            "0123456789abcdef0123456789abcdef",
        ));
        auth.audience = Some("chat".into());
        let token = mint(&request, &auth).unwrap();
        let service = crate::auth::token::TokenService::new(
            auth.jwt_secret.as_ref().unwrap().expose().as_bytes(),
            &auth,
        );
        let verified = service.verify(&token).unwrap();
        assert_eq!(
            verified.subject,
            crate::auth::token::Subject::Local(shared::ids::UserId(42))
        );
        assert_eq!(verified.claims.username.as_deref(), Some("ann"));
        assert_eq!(verified.claims.nickname.as_deref(), Some("Ann"));
    }
}
