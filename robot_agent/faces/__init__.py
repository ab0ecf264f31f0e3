"""The robot's enrolled faces: the face key, embeddings sealed in the database, the matcher's index of them
(in memory and in its sealed file). The pipeline that makes embeddings is `models/faces/`; the camera that
feeds it is `robot_agent/vision/`; the `robot-agent faces` commands are `robot_agent/cli/faces.py`."""
