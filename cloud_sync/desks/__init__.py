"""The desks: what the cloud decides on the database. Sales (one writer for the Store API and ingest),
purchases in groups, tickets and the keys that sign them, and the wallet's live codes."""
