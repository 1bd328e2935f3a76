"""Reading the log: an object's state at any seq or time, through the one replay."""
