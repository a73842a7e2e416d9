"""The client SDK: runs, their config and summary, and the background writer."""
