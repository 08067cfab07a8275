"""What a run measures of a growing model: unit inactivity, growth's disruption of old tasks, and
multiply-adds by phase."""
