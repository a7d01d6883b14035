"""Results aggregator: tables and figures from every run record and study."""
