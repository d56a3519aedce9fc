"""Licences and data domains: users read them, admins change them."""
from pyramid.authorization import Allow, Authenticated

from ..models import DataDomain, Framework, Licence
from ..permissions import Permission
from ..representations import domain_json, framework_json, licence_json
from ..services.catalogue import DomainService, FrameworkService, LicenceService
from .base import CatalogueItem, CreatableCollection

READ_ONLY_FOR_USERS = [(Allow, Authenticated, Permission.VIEW)]


class Licences(CreatableCollection):
    __acl__ = READ_ONLY_FOR_USERS
    model = Licence
    item_class = CatalogueItem
    service_class = LicenceService
    represent = staticmethod(licence_json)


class Domains(CreatableCollection):
    __acl__ = READ_ONLY_FOR_USERS
    model = DataDomain
    item_class = CatalogueItem
    service_class = DomainService
    represent = staticmethod(domain_json)


class Frameworks(CreatableCollection):
    __acl__ = READ_ONLY_FOR_USERS
    model = Framework
    item_class = CatalogueItem
    service_class = FrameworkService
    represent = staticmethod(framework_json)
