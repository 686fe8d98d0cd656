"""The lifecycle app: NewStore's Event Stream into commercetools' native order fields."""
