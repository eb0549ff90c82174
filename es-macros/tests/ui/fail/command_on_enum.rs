use es_core::command;

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
enum Open {
    Personal { account_id: String },
}

fn main() {}
