"""Training, validation, prediction and export of the joint model, on Ultralytics engine classes."""
