"""The column names of a session log as every reader returns it (the official GRU4Rec's
names), apart from the readers so that each format's module can use them."""

SESSION, ITEM, TIME = "SessionId", "ItemId", "Time"
