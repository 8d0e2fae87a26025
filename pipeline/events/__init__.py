"""Ground plane, zones, lines and conflicts: what forecasts are for (issue 15)."""
