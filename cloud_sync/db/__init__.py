"""The cloud's database: its tables, engines and sessions (every write to a table robots copy logged in
the same transaction, `changes`), the schema the seed's tables live in, and the migrations."""
