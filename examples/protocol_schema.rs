//! Prints the JSON Schema of the wire protocol, from which the TypeScript client's frame types
//! are generated: `npm run generate` in `clients/typescript` runs it and writes both files.
//!
//! ```text
//! cargo run -p switchboard --features schema --example protocol_schema
//! ```

fn main() {
    print!("{}", switchboard::protocol_schema_text());
}
