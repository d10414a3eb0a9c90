"""Test doubles that ship with jitbot: a Slack Web API stand-in and a client that signs requests as Slack does."""
