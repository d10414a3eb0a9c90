"""Everything that speaks Slack: action ids, pure views, thin listeners, notifications."""
