"""Registering robots: `POST /base_api/admin/robot` and `cloud-sync robot add` make them alike."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from cloud_sync.errors import CloudSyncError
from models.base_api import RobotCreate
from models.base_server import Robot


def robot_row(body: RobotCreate) -> Robot:
    """A robots row from its body: the robot's own id when it gives one (robot.toml names it), else new."""
    return Robot.model_validate(body.model_dump(exclude_none=True))


async def add_robot(session: AsyncSession, body: RobotCreate) -> Robot:
    """Register a robot (`cloud-sync robot add`); an id the robots table already has is refused."""
    if body.id is not None and await session.get(Robot, body.id) is not None:
        raise CloudSyncError(f"a robot with id {body.id} already exists")
    robot = robot_row(body)
    session.add(robot)
    try:
        await session.commit()
    except IntegrityError as err:  # registered by someone else since the check above
        raise CloudSyncError(f"a robot with id {robot.id} already exists") from err
    return robot
