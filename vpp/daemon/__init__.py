"""The long-running service: scheduled bidding, dispatch, persistence, recovery."""
