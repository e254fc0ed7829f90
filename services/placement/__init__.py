"""The placement agent: one per server replica; starts the model server and loads models into it."""
