import factory

from messaging.models import Sender
from mittis.accounts.models import Account
from mittis.accounts.services import api_key_create


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")


class SenderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sender

    account = factory.SubFactory(AccountFactory)
    value = "+18045550142"
    kind = Sender.PHONE_NUMBER


def api_key_for(account: Account, *, livemode: bool = False) -> str:
    """A new key's secret, made the way customers get theirs."""
    return api_key_create(account=account, livemode=livemode).secret
