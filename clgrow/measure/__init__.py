"""What a run measures of a growing model: unit inactivity, disruption of old tasks, multiply-adds."""
