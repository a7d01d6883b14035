"""Reading session logs and turning them into arrays the core trains on."""
