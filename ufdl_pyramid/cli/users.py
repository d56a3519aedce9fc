"""``ufdl users ...``: create users, set passwords, deactivate, and make the first admin."""
import secrets

from sqlalchemy import select

from ..errors import Conflict, NotFound
from ..models import User
from ..services.auth import AuthConfig, AuthService
from .environment import password_of, utf8_text


def register(areas) -> None:
    area = areas.add_parser("users", help="user accounts")
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a user (password from --password or UFDL_PASSWORD)")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="make the user an administrator")
    create.add_argument("--password", help="the password (default: the UFDL_PASSWORD environment variable)")
    create.add_argument("--email", default="")
    create.set_defaults(handler=run_create)

    password = actions.add_parser("password", help="set a user's password (--password or UFDL_PASSWORD)")
    password.add_argument("name")
    password.add_argument("--password")
    password.set_defaults(handler=run_password)

    deactivate = actions.add_parser("deactivate", help="deactivate a user and end all its tokens")
    deactivate.add_argument("name")
    deactivate.set_defaults(handler=run_deactivate)

    activate = actions.add_parser("activate", help="let a deactivated user log in again")
    activate.add_argument("name")
    activate.set_defaults(handler=run_activate)

    listing = actions.add_parser("list", help="list users")
    listing.set_defaults(handler=run_list)

    bootstrap = actions.add_parser("bootstrap", help="create 'admin' with a random password if no admin exists")
    bootstrap.set_defaults(handler=run_bootstrap)


def _service(environment, db) -> AuthService:
    return AuthService(db, AuthConfig.from_settings(environment.settings))


def _user(db, name: str) -> User:
    user = db.scalar(select(User).where(User.username == utf8_text(name, "the username")))
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def run_create(args, environment) -> int:
    with environment.session() as db:
        email = None if args.email is None else utf8_text(args.email, "the e-mail address")
        user = _service(environment, db).create_user(args.name, password_of(args), is_admin=args.admin,
                                                     email=email)
        print(f"created {'admin' if user.is_admin else 'user'} {user.username!r} (pk {user.id})")
    return 0


def run_password(args, environment) -> int:
    with environment.session() as db:
        _service(environment, db).set_password(_user(db, args.name), password_of(args))
    print(f"password of {args.name!r} changed")
    return 0


def run_deactivate(args, environment) -> int:
    with environment.session() as db:
        _service(environment, db).deactivate(_user(db, args.name))
    print(f"{args.name!r} deactivated; its tokens no longer work")
    return 0


def run_activate(args, environment) -> int:
    # Without it a deactivation could only be undone in SQL. The refresh tokens it revoked stay revoked.
    with environment.session() as db:
        _user(db, args.name).is_active = True
    print(f"{args.name!r} activated; it can log in again")
    return 0


def run_list(args, environment) -> int:
    with environment.session() as db:
        for user in db.scalars(select(User).order_by(User.id)):
            role = "admin" if user.is_admin else "user"
            state = "active" if user.is_active else "inactive"
            print(f"{user.id}\t{user.username}\t{role}\t{state}")
    return 0


def run_bootstrap(args, environment) -> int:
    # Exit 0 only if an administrator can log in afterwards (``make run`` goes on to serve): otherwise it says
    # why not and what to do, and leaves the users as they are.
    with environment.session() as db:
        admins = db.execute(select(User.username, User.is_active).where(User.is_admin.is_(True))
                            .order_by(User.id)).all()
        if any(active for _, active in admins):
            print("an administrator exists: nothing to do")
            return 0
        if admins:
            names = [name for name, _ in admins]
            which = names[0] if len(names) == 1 else "NAME"
            raise Conflict(f"every administrator is deactivated ({', '.join(map(repr, names))}): nothing created; "
                           f"run 'ufdl users activate {which}'")
        if db.scalar(select(User.id).where(User.username == "admin")) is not None:
            raise Conflict("a user 'admin' exists but is not an administrator: nothing created; "
                           "create one with 'ufdl users create NAME --admin'")
        password = secrets.token_urlsafe(12)
        _service(environment, db).create_user("admin", password, is_admin=True)
    print(f"created the administrator 'admin' with the password: {password}\n"
          "(shown once: note it now, or change it with 'ufdl users password admin')")
    return 0
