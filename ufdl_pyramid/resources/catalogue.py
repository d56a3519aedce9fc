"""Licences and data domains: users read them, admins change them."""
from pyramid.authorization import Allow, Authenticated

from ..models import DataDomain, Licence
from ..permissions import Permission
from ..representations import domain_json, licence_json
from ..services.catalogue import DomainService, LicenceService
from .base import Collection, SoftDeletableItem

READ_ONLY_FOR_USERS = [(Allow, Authenticated, Permission.VIEW)]


class Licences(Collection):
    __acl__ = READ_ONLY_FOR_USERS
    model = Licence
    item_class = SoftDeletableItem
    service_class = LicenceService
    represent = staticmethod(licence_json)


class Domains(Collection):
    __acl__ = READ_ONLY_FOR_USERS
    model = DataDomain
    item_class = SoftDeletableItem
    service_class = DomainService
    represent = staticmethod(domain_json)
