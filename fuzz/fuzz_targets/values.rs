//! Fuzz the value parsers of the desired-state format.
//!
//! Input format: the whole input, converted with `String::from_utf8_lossy`, is given to the
//! `FromStr` of every value type. Checks that no parser panics and that every value that
//! parses prints (`Display`) as text that parses back to an equal value.
#![no_main]

use std::fmt::{Debug, Display};
use std::str::FromStr;

use berth::spec::{
    capability::Capability,
    duration::Duration,
    image_ref::ImageSource,
    mount::Mount,
    name::Name,
    port::{PortMapping, PortRange},
    signal::Signal,
    size::ByteSize,
};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(kind: &str, input: &str)
where
    T: FromStr + Display + Debug + PartialEq,
    T::Err: Display,
{
    let Ok(value) = input.parse::<T>() else {
        return;
    };
    let printed = value.to_string();
    match printed.parse::<T>() {
        Ok(again) => assert_eq!(
            again, value,
            "{kind}: {input:?} parsed to {value:?}, printed as {printed:?}, which parses to {again:?}"
        ),
        Err(e) => panic!(
            "{kind}: {input:?} parsed to {value:?}, printed as {printed:?}, which does not parse: {e}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;
    round_trip::<Duration>("Duration", s);
    round_trip::<ByteSize>("ByteSize", s);
    round_trip::<PortMapping>("PortMapping", s);
    round_trip::<PortRange>("PortRange", s);
    round_trip::<Mount>("Mount", s);
    round_trip::<Signal>("Signal", s);
    round_trip::<Capability>("Capability", s);
    round_trip::<Name>("Name", s);
    round_trip::<ImageSource>("ImageSource", s);
});
