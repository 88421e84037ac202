//! What systemd does to a value after Quadlet wrote it into the service's command line:
//! `%` specifiers (resolved as for a system unit run by root, the only kind berth replaces)
//! and `$VAR` substitution from the service's environment (not knowable here: reported).

/// The unit a value belongs to, for the specifiers that name it.
#[derive(Debug, Clone)]
pub(crate) struct UnitNames {
    /// The generated service's name without `.service` ("web").
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExpandError {
    #[error(
        "`%{0}` is a systemd specifier the importer cannot resolve (it depends on the host or \
         the running service): write its value"
    )]
    Specifier(char),
    #[error(
        "`{0}` is substituted by systemd from the service's environment when it starts \
         podman: write its value (`$$` for a literal `$`)"
    )]
    Variable(String),
}

/// `%n`, `%N`, `%p`, `%i`, `%%` and the system unit's directories resolved; `$$` made `$`;
/// `${VAR}`, and `$VAR` as the whole of `text` (one command-line word), reported.
pub(crate) fn expand(text: &str, unit: &UnitNames) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let Some(s) = chars.next() else {
                    out.push('%');
                    break;
                };
                let prefix = unit.service.split('@').next().unwrap_or_default();
                let instance = unit.service.split_once('@').map(|(_, i)| i).unwrap_or("");
                match s {
                    '%' => out.push('%'),
                    'n' => {
                        out.push_str(&unit.service);
                        out.push_str(".service");
                    }
                    'N' => out.push_str(&unit.service),
                    'p' | 'P' => out.push_str(prefix),
                    'i' | 'I' => out.push_str(instance),
                    'h' => out.push_str("/root"),
                    'u' => out.push_str("root"),
                    'g' => out.push_str("root"),
                    'U' | 'G' => out.push('0'),
                    't' => out.push_str("/run"),
                    'S' => out.push_str("/var/lib"),
                    'C' => out.push_str("/var/cache"),
                    'L' => out.push_str("/var/log"),
                    'E' => out.push_str("/etc"),
                    'T' => out.push_str("/tmp"),
                    'V' => out.push_str("/var/tmp"),
                    's' => out.push_str("/bin/sh"),
                    other => return Err(ExpandError::Specifier(other)),
                }
            }
            '$' => match chars.peek() {
                Some('$') => {
                    chars.next();
                    out.push('$');
                }
                Some('{') => {
                    let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    return Err(ExpandError::Variable(format!("${name}}}")));
                }
                Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                    let mut name = String::new();
                    while let Some(c) = chars
                        .peek()
                        .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
                    {
                        name.push(*c);
                        chars.next();
                    }
                    // Braceless, systemd substitutes only a word that is the variable alone.
                    if out.is_empty() && chars.peek().is_none() {
                        return Err(ExpandError::Variable(format!("${name}")));
                    }
                    out.push('$');
                    out.push_str(&name);
                }
                _ => out.push('$'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifiers_of_a_system_unit() {
        let u = UnitNames {
            service: "web".into(),
        };
        assert_eq!(expand("systemd-%N", &u).unwrap(), "systemd-web");
        assert_eq!(expand("%n %p %i|", &u).unwrap(), "web.service web |");
        assert_eq!(
            expand("%S/web:%t/web:%h/x", &u).unwrap(),
            "/var/lib/web:/run/web:/root/x"
        );
        assert_eq!(
            expand("100%% %E %C %L %T %V", &u).unwrap(),
            "100% /etc /var/cache /var/log /tmp /var/tmp"
        );
        let t = UnitNames {
            service: "worker@3".into(),
        };
        assert_eq!(expand("%p-%i", &t).unwrap(), "worker-3");
        assert_eq!(expand("%H", &u), Err(ExpandError::Specifier('H')));
        assert_eq!(expand("%m", &u), Err(ExpandError::Specifier('m')));
    }

    #[test]
    fn dollars() {
        let u = UnitNames {
            service: "web".into(),
        };
        assert_eq!(expand("cost $$5 $ 1$", &u).unwrap(), "cost $5 $ 1$");
        assert_eq!(
            expand("$HOME", &u),
            Err(ExpandError::Variable("$HOME".into()))
        );
        // Inside a word systemd leaves a braceless variable alone (a shell may expand it).
        assert_eq!(expand("echo $HOME/x", &u).unwrap(), "echo $HOME/x");
        assert_eq!(expand("PATH=$PATH:/x", &u).unwrap(), "PATH=$PATH:/x");
        assert_eq!(
            expand("a${B_C}d", &u),
            Err(ExpandError::Variable("${B_C}".into()))
        );
    }
}
