//! `image`: the name of an `[image.NAME]`, or a reference that is unmistakably one.

use std::collections::BTreeMap;

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::image_ref::ImageSource;
use crate::spec::loader::Kind;
use crate::spec::model::Image;
use crate::spec::name::Name;
use crate::spec::resolve::{Names, span};

use super::report::Report;

/// The image to run, looked up in the resolved `images` when it names one. None when it is
/// missing, unusable or invalid (each reported, or noted as an unusable reference).
pub(super) fn resolve_image(
    image: Option<&Spanned<String>>,
    images: &BTreeMap<Name, Image>,
    names: &Names,
    report: &mut Report,
) -> Option<ImageSource> {
    let what = report.what();
    let Some(image) = image else {
        report.missing(
            "image",
            "\"NAME\" (an [image.NAME]) or a reference such as \"docker.io/library/nginx:1.27\"",
        );
        return None;
    };
    let at = span(image);
    let text = image.get_ref().as_str();
    if let Some(img) = images.get(text) {
        Some(img.source.clone())
    } else if names.is_declared(Kind::Image, text) {
        report.unusable_reference();
        None
    } else if text.trim().is_empty() {
        report.push(
            report.diag(Code::InvalidValue, at, format!("{what}: `image` is empty"))
                .with_help("write the name of an [image.NAME] or a reference such as \"docker.io/library/nginx:1.27\""),
        );
        None
    } else if !text.contains([':', '/', '@']) {
        let help = names.unknown_help(
            Kind::Image,
            text,
            &format!("declare `[image.{text}]`, or write a full reference such as \"docker.io/library/{text}:latest\" (a bare word never pulls from Docker Hub, so a typo cannot fetch someone else's image)"),
        );
        report.push(
            report
                .diag(
                    Code::UnknownReference,
                    at,
                    format!("{what} refers to unknown image `{text}`"),
                )
                .with_help(help),
        );
        None
    } else {
        match text.parse::<ImageSource>() {
            Ok(s) => Some(s),
            Err(err) => {
                report.hinted(
                    report.diag(Code::InvalidValue, at, format!("{what}: {err}")),
                    &err,
                );
                None
            }
        }
    }
}
