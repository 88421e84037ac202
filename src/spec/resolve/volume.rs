//! `[volume.NAME]` entries.

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::loader::Entry;
use crate::spec::model::Volume;
use crate::spec::mount::parse_mode;
use crate::spec::raw::RawVolume;

use super::{Resolver, origin, span};

impl Resolver {
    pub(super) fn volume(&mut self, e: &Entry<RawVolume>) -> Option<Volume> {
        let raw = &e.raw;
        let mut ok = true;
        let mut id = |this: &mut Self, v: &Option<Spanned<i64>>, what: &str| -> Option<u32> {
            let v = v.as_ref()?;
            match u32::try_from(*v.get_ref()) {
                Ok(id) if id != u32::MAX => Some(id),
                _ => {
                    this.push(
                        e.diag(
                            Code::InvalidValue,
                            span(v),
                            format!(
                                "volume `{}`: {what} {} is out of range",
                                e.name,
                                v.get_ref()
                            ),
                        )
                        .with_help(format!("a {what} is between 0 and 4294967294")),
                    );
                    ok = false;
                    None
                }
            }
        };
        let uid = id(self, &raw.uid, "uid");
        let gid = id(self, &raw.gid, "gid");
        let mode = match &raw.mode {
            None => None,
            Some(m) => match parse_mode(m.get_ref()) {
                Ok(mode) => Some(mode),
                Err(err) => {
                    self.hinted(
                        e.diag(
                            Code::InvalidValue,
                            span(m),
                            format!("volume `{}`: {err}", e.name),
                        ),
                        &err,
                    );
                    ok = false;
                    None
                }
            },
        };
        ok.then(|| Volume {
            origin: origin(e),
            uid,
            gid,
            mode,
            labels: raw.labels.clone(),
        })
    }
}
