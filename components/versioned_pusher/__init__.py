"""VersionedPusher: integer versions, atomic publish, retention, provenance."""
