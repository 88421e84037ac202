//! Calls that would contradict the desired state, refused with what to do instead: berth
//! runs what the desired files describe, so containers, networks and volumes are made,
//! changed and removed by editing those files.

use hyper::{Response, StatusCode};

use crate::api::{Body, error};

/// A refusal pointing at the desired files.
pub(super) fn desired(what: &str) -> Response<Body> {
    error(
        StatusCode::FORBIDDEN,
        &format!(
            "berth runs what its desired files describe: {what}; edit the desired files and the agent applies them"
        ),
    )
}

pub(super) fn create() -> Response<Body> {
    desired("containers are made from [container.NAME] entries (or `berth run` for one by hand)")
}

pub(super) fn change(id: &str, action: &str) -> Response<Body> {
    let what = match action {
        "rename" => format!("{id} is named by its [container.NAME] entry"),
        "update" => format!("the limits of {id} are its entry's `resources`"),
        _ => format!("berth does not {action} containers ({id})"),
    };
    desired(&what)
}

pub(super) fn prune(what: &str) -> Response<Body> {
    desired(&format!(
        "the agent prunes {what} no entry describes any more (`berth prune images` for images)"
    ))
}

/// `POST /images/create`: pulls follow the desired state (and `berth pull`).
pub(super) fn pull() -> Response<Body> {
    desired("images are pulled for the entries that name them (or with `berth pull REFERENCE`)")
}
