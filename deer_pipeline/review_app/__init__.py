"""The review web app: a queue of proposed decisions, deer and list pages, crops (issue 13)."""
