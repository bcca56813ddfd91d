//! The API surface, rendered as sorted lines and compared with a checked-in
//! file, so every change to the wire contract shows up in review.
//! Regenerate with `UPDATE_EXPECT=1 cargo test -p wormbox-proto`.

use prost::Message as _;
use prost_types::FileDescriptorSet;

fn render() -> String {
    let set = FileDescriptorSet::decode(wormbox_proto::FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let mut lines = Vec::new();
    for file in set.file {
        let package = file.package().to_owned();
        for message in &file.message_type {
            for field in &message.field {
                let ty = if field.type_name().is_empty() {
                    format!("{:?}", field.r#type()).to_lowercase()
                } else {
                    field.type_name().trim_start_matches('.').to_owned()
                };
                let label = if field.label() == prost_types::field_descriptor_proto::Label::Repeated {
                    "repeated "
                } else {
                    ""
                };
                lines.push(format!("{package}.{}.{} = {} : {label}{ty}", message.name(), field.name(), field.number()));
            }
        }
        for en in &file.enum_type {
            for value in &en.value {
                lines.push(format!("{package}.{}.{} = {}", en.name(), value.name(), value.number()));
            }
        }
        for service in &file.service {
            for method in &service.method {
                lines.push(format!(
                    "{package}.{}/{}({}{}) -> {}{}",
                    service.name(),
                    method.name(),
                    if method.client_streaming() { "stream " } else { "" },
                    method.input_type().trim_start_matches('.'),
                    if method.server_streaming() { "stream " } else { "" },
                    method.output_type().trim_start_matches('.'),
                ));
            }
        }
    }
    lines.sort();
    lines.join("\n") + "\n"
}

#[test]
fn api_surface_matches_the_checked_in_snapshot() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/output/api-surface.txt");
    let actual = render();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(path, &actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    assert!(
        expected == actual,
        "the API surface changed; review and run UPDATE_EXPECT=1 cargo test -p wormbox-proto\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}
