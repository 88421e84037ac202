//! `[image.NAME]` entries, and image entries that name one source with different settings.

use std::collections::BTreeMap;

use crate::spec::diag::Code;
use crate::spec::image_ref::ImageSource;
use crate::spec::loader::{Entry, Kind};
use crate::spec::model::{Desired, Image, Platform};
use crate::spec::name::Name;
use crate::spec::raw::RawImage;

use super::{Resolver, missing, origin, span};

impl Resolver {
    pub(super) fn image(&mut self, e: &Entry<RawImage>) -> Option<Image> {
        let raw = &e.raw;
        let Some(reference) = &raw.reference else {
            self.push_opt(missing(
                e,
                Kind::Image,
                "reference",
                "\"docker.io/library/nginx:1.27-alpine\"",
            ));
            return None;
        };
        let platform = match &raw.platform {
            None => None,
            Some(p) => match parse_platform(p.get_ref()) {
                Some(p) => Some(p),
                None => {
                    let d = e.diag(Code::InvalidValue, span(p), format!("image `{}`: invalid platform `{}`", e.name, p.get_ref()))
                        .with_help("write \"OS/ARCH\" or \"OS/ARCH/VARIANT\", e.g. \"linux/amd64\" or \"linux/arm64/v8\"");
                    self.push(d);
                    return None;
                }
            },
        };
        Some(Image {
            origin: origin(e),
            source: reference.get_ref().clone(),
            pull: raw.pull,
            platform,
            insecure: raw.insecure,
        })
    }

    /// Two image entries naming the same source with different settings would make the pull
    /// policy depend on which one a container names; refuse it.
    pub(super) fn check_image_sources(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawImage>>,
        desired: &mut Desired,
    ) {
        let mut by_source: BTreeMap<&ImageSource, &Name> = BTreeMap::new();
        let mut conflicting = Vec::new();
        for (name, image) in &desired.images {
            if let Some(first) = by_source.get(&image.source) {
                let a = &desired.images[*first];
                if (a.pull, &a.platform, a.insecure)
                    != (image.pull, &image.platform, image.insecure)
                {
                    let e = &entries[name];
                    let at = e
                        .raw
                        .reference
                        .as_ref()
                        .map(span)
                        .unwrap_or(e.key_span.clone());
                    let d = e
                        .diag(Code::Conflict, at, format!("images `{first}` and `{name}` name the same reference `{}` with different settings", image.source))
                        .with_help("declare the image once and refer to that name from every container")
                        .with_related(entries[*first].location(), "the other image");
                    self.diagnostics.push(d);
                    conflicting.push(name.clone());
                }
            } else {
                by_source.insert(&image.source, name);
            }
        }
        for name in conflicting {
            desired.images.remove(&name);
            self.mark_broken(Kind::Image, &name);
        }
    }
}

fn parse_platform(s: &str) -> Option<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match parts.as_slice() {
        [os, arch] if ok(os) && ok(arch) => Some(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: None,
        }),
        [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Some(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: Some(variant.to_string()),
        }),
        _ => None,
    }
}
