//! The XMPP targets after TLS: a component's XEP-0114 handshake (when credentials are
//! given), a client port's SASL mechanisms.
//!
//! ```text
//! component  <stream:stream xmlns='jabber:component:accept' to=NAME> ← header with id
//!            <handshake>hex(SHA-1(id + secret))</handshake>      ← <handshake/> or a
//!                                                                  stream error
//! c2s        <stream:stream xmlns='jabber:client' to=D>          ← <stream:features> with
//!                                                                  <mechanisms/>
//! ```

use minidom::Element;
use sha1::{Digest, Sha1};
use tokio::io::{BufReader, ReadHalf, WriteHalf};

use super::{tls, Check, Endpoint, Options, Service, Verdict};
use crate::net::probe::{ProbedStream, PEER_LIMITS};
use crate::xmpp::ns;
use crate::xmpp::stream::{StreamHeader, StreamReader, StreamWriter};

type Reader = StreamReader<BufReader<ReadHalf<ProbedStream>>>;
type Writer = StreamWriter<WriteHalf<ProbedStream>>;

/// The line of one XMPP endpoint.
pub(super) async fn check(options: &Options, endpoint: &Endpoint) -> Check {
    let mut check = Check::new(endpoint.service.name(), endpoint.label());
    let Some(stream) = tls::handshake(options, endpoint, &mut check).await else {
        return check;
    };
    match endpoint.service {
        Service::Component => component(options, endpoint, stream, &mut check).await,
        _ => mechanisms(options, endpoint, stream, &mut check).await,
    }
    check
}

/// Opens a stream in `default_ns` to `to` over `stream`, under the step deadline.
async fn open(
    options: &Options,
    stream: ProbedStream,
    default_ns: &str,
    to: &str,
) -> Result<(Reader, Writer, StreamHeader), String> {
    let (read, write) = tokio::io::split(stream);
    let mut reader = StreamReader::new(BufReader::new(read), PEER_LIMITS);
    let mut writer = StreamWriter::new(write, default_ns);
    let opened = tokio::time::timeout(options.step_timeout, async {
        writer.initiating_header(to)?;
        writer.flush().await?;
        reader.read_header().await
    })
    .await;
    match opened {
        Ok(Ok(header)) => Ok((reader, writer, header)),
        Ok(Err(e)) => Err(format!("the stream did not open: {e}")),
        Err(_) => Err(format!(
            "no stream header within {:?}",
            options.step_timeout
        )),
    }
}

/// The next element under the step deadline.
async fn next(options: &Options, reader: &mut Reader) -> Result<Element, String> {
    match tokio::time::timeout(options.step_timeout, reader.read_element()).await {
        Ok(Ok(Some(element))) => Ok(element),
        Ok(Ok(None)) => Err("the server closed the stream".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", options.step_timeout)),
    }
}

/// The condition of a `<stream:error>`, if `element` is one.
fn stream_error(element: &Element) -> Option<String> {
    if !element.is("error", ns::STREAM) {
        return None;
    }
    element
        .children()
        .find(|c| c.ns() == ns::STREAMS_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .or(Some("undefined-condition".into()))
}

async fn component(
    options: &Options,
    endpoint: &Endpoint,
    stream: ProbedStream,
    check: &mut Check,
) {
    let Some(login) = &options.component else {
        check.note("handshake not tried (give --component NAME --secret-file FILE)");
        return;
    };
    let started = tokio::time::Instant::now();
    let (mut reader, mut writer, header) =
        match open(options, stream, ns::COMPONENT, &login.name).await {
            Ok(opened) => opened,
            Err(reason) => {
                check.problem(
                    Verdict::Red,
                    format!("XEP-0114: {reason}"),
                    Some(format!(
                        "{} does not open a component stream: check that it is the component \
                         port (direct TLS, 5223 by default)",
                        endpoint.label()
                    )),
                );
                return;
            }
        };
    let answer = match header.id {
        Some(id) => {
            let digest = hex::encode(Sha1::digest(
                format!("{id}{}", login.secret.expose()).as_bytes(),
            ));
            let handshake = Element::builder("handshake", ns::COMPONENT)
                .append(digest)
                .build();
            let sent = async {
                writer.element(&handshake)?;
                writer.flush().await
            };
            match sent.await {
                Ok(()) => next(options, &mut reader).await,
                Err(e) => Err(e.to_string()),
            }
        }
        // Without an id the server refused the stream; its error follows.
        None => next(options, &mut reader).await,
    };
    match answer {
        Ok(element) if element.is("handshake", ns::COMPONENT) => {
            let took = check.millis("handshake_ms", started.elapsed());
            check.note(format!("handshake as {} {took}", login.name));
            let _ = writer.footer();
            let _ = writer.flush().await;
        }
        Ok(element) => {
            let condition =
                stream_error(&element).unwrap_or_else(|| format!("<{}/>", element.name()));
            let recommendation = match condition.as_str() {
                "not-authorized" => format!(
                    "The server refused the secret for {}: give the bridge (and --secret-file) \
                     the secret configured on the server ([[components]] or `bridgehead \
                     component add`)",
                    login.name
                ),
                "host-unknown" | "item-not-found" => format!(
                    "The server does not know the component {}: register it ([[components]] or \
                     `bridgehead component add`) or correct the bridge's name",
                    login.name
                ),
                _ => format!(
                    "The server at {} refused the component {} ({condition}): see its log",
                    endpoint.label(),
                    login.name
                ),
            };
            check.problem(
                Verdict::Red,
                format!("XEP-0114 handshake as {} refused: {condition}", login.name),
                Some(recommendation),
            );
        }
        Err(reason) => check.problem(
            Verdict::Red,
            format!("XEP-0114 handshake as {}: {reason}", login.name),
            Some(format!(
                "{} did not answer the component handshake: see its server's log",
                endpoint.label()
            )),
        ),
    }
}

async fn mechanisms(
    options: &Options,
    endpoint: &Endpoint,
    stream: ProbedStream,
    check: &mut Check,
) {
    let features = match open(options, stream, ns::CLIENT, &options.domain).await {
        Ok((mut reader, mut writer, _)) => {
            let features = next(options, &mut reader).await;
            let _ = writer.footer();
            let _ = writer.flush().await;
            features
        }
        Err(reason) => Err(reason),
    };
    let offered: Vec<String> = match features {
        Ok(features) if features.is("features", ns::STREAM) => features
            .get_child("mechanisms", ns::SASL)
            .map(|m| m.children().map(Element::text).collect())
            .unwrap_or_default(),
        Ok(other) => {
            let what = stream_error(&other).unwrap_or_else(|| format!("<{}/>", other.name()));
            check.problem(
                Verdict::Red,
                format!("the stream to {} was answered with {what}", options.domain),
                Some(format!(
                    "{} does not serve the XMPP domain {}: check the server's domain",
                    endpoint.label(),
                    options.domain
                )),
            );
            return;
        }
        Err(reason) => {
            check.problem(Verdict::Red, format!("after TLS: {reason}"), None);
            return;
        }
    };
    if offered.is_empty() {
        check.problem(
            Verdict::Red,
            "no SASL mechanism offered after TLS".to_owned(),
            Some(format!(
                "{} offers clients no way to log in: check its SASL configuration",
                endpoint.label()
            )),
        );
    } else {
        check.note(format!("SASL {}", offered.join(" ")));
    }
}
