"""jitbot: Slack-native just-in-time access to cloud resources."""
