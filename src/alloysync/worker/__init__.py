"""`alloysync worker`: the launcher, the module Dramatiq's CLI boots, the actor and its middleware."""
