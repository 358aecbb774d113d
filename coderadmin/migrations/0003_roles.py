"""Create the role groups and give each its permissions.

Permissions are created here (not left to post_migrate) so the groups are complete as soon as
this migration has run. The lists are frozen copies: a later change to roles gets its own migration.
"""

from django.db import migrations

PERMISSIONS = {
    "manage_users": "Can manage every user and role",
    "manage_members": "Can manage member accounts",
    "manage_infrastructure": "Can change infrastructure settings",
    "view_all_environments": "Can view every user's environments",
    "view_audit_log": "Can read the audit log",
}
ROLE_PERMISSIONS = {
    "Site admin": list(PERMISSIONS),
    "Site manager": ["manage_members", "manage_infrastructure", "view_all_environments", "view_audit_log"],
    "Auditor": ["view_all_environments", "view_audit_log"],
    "Member": [],
}


def create_roles(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="coderadmin", model="user")
    permissions = {}
    for codename, name in PERMISSIONS.items():
        permissions[codename], _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    for group_name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.set([permissions[c] for c in codenames])


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=list(ROLE_PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("coderadmin", "0002_audit_and_permissions"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
